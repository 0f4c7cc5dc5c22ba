"""The campaign language: the JSON form of a campaign (DESIGN §5) and what it means.

- ``triggers``: the trigger table, one row per trigger type (label, parameters, defaults,
  continuous or not, about an appointment or not, per case or not, how it is described); the
  validation of a trigger reads it.
- ``filters``: the filter vocabulary (names, labels, lookup kinds) and its validation.
- ``spec``: the rest of the campaign JSON (schedule, goal, message steps) and
  ``CampaignSerializer``, the one validation the API and the wizard share.
- ``checks``: the small value checks they are built from (every error names its field).
- ``describe``: a campaign in staff's words.

What a campaign reaches is compiled to SQL in ``campaigns.audience``; what a message says
(merge fields, SMS length, email HTML) is ``campaigns.content``.
"""
