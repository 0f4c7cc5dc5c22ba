"""Forms of the campaign pages, by page family: the wizard's steps (``wizard``: name and goal;
``audience``: trigger, filters, schedule; ``messages``: the steps), ``blasts``, ``templates``,
and what they share (``fields``).

They parse what staff enter into the campaign JSON of DESIGN §5 and hand it to the validators
of ``campaigns.language`` (the same ones the REST API uses); the validators' messages are
shown next to the field they name. Services do the writing.
"""
