"""Campaign pages (User Plus and above, DESIGN §3 and §9), one module per page family: the drip
list (``drips``), the five-step wizard (``wizard``, ``wizard_messages``, its state in
``wizard_state``), blast campaigns with their audience preview (``blasts``) and the template
library (``templates``); ``shared`` holds what they share.

Views parse input with ``campaigns.forms`` (whose validation is ``campaigns.language``), call
one selector or service and render; times show in the practice's time zone, which
``trackstat.tenancy.PracticeTimeZoneMiddleware`` activates. The parts htmx swaps are
``{% partialdef %}`` blocks rendered alone when ``trackstat.htmx.wants_partial``; every form
also works as a plain POST without JavaScript.
"""
