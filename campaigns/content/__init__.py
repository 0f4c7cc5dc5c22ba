"""What a message says (DESIGN §5.4): merge fields and their rendering for one patient
(``render``), SMS length and segments as carriers count them (``sms``), and the HTML an email
may carry (``email_html``). The campaign JSON's validation (``campaigns.language.spec``), the
wizard's preview and the engine all use these."""
