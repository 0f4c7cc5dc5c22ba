"""FHIR R4 import (DESIGN §4.1, ``POST /api/v1/fhir``).

A Bundle of Patient, Appointment, Encounter and Consent resources becomes the same patient
and appointment records as the REST API's, checked by the same serializers
(``patients.sync.records``) and written by the same upserts (``patients.sync.patients`` and
``patients.sync.appointments``); its Consents become changes of the consent ledger. The
package reads in the order of an import:

- ``reading``: the bundle itself (``bundle_entries``), references between its entries
  (``BundleIndex``), and reading elements without trusting their shape;
- ``resources``: one mapping per resource type (``patient_record``, ``appointment_record``,
  ``encounter_visit``, ``consent_statement``), and which FHIR element each record field
  comes from;
- ``mapping``: the whole bundle as records (``bundle_map``, pure) and the visits applied to
  appointments (``visits_apply``);
- ``importer``: ``fhir_bundle_import``, the one service: validation, upserts, errors by entry
  (Consents are written by ``patients.sync.consents.emr_consents_record``).

Mapping rules
-------------
Bundle
    ``resourceType`` is ``Bundle``; ``type`` is ``batch``, ``transaction`` or ``collection``;
    ``entry`` (absent means empty) is a list of at most 5,000 entries, each with a
    ``resource`` of type Patient, Appointment, Encounter or Consent; any other resource type
    is an error naming the entry. Entries' ``request`` is not read: every resource is an
    upsert by its external id.

External id (every resource type)
    The ``value`` of the identifier whose ``type.coding`` has the code ``MR`` (medical record
    number), else the first identifier's ``value``, else the resource's ``id``.

Patient
    ``name`` (the one with ``use: official``, else the first): ``given[0]`` → first_name,
    ``family`` → last_name. ``birthDate`` (a full date) → birth_date. ``gender`` male, female,
    other, unknown → M, F, X, U. ``telecom``: the ``phone`` with ``use: mobile``, else the
    first phone → phone; the first ``email`` → email. ``address[0]``: ``line[0]``,
    ``line[1]``, ``city``, ``state``, ``postalCode``. Status: ``deceasedBoolean: true`` or a
    ``deceasedDateTime`` → deceased, else ``active: false`` → inactive, else active. As for
    every record, an element that is absent leaves the stored value as it is; an element that
    is present sets every field it maps to (a ``name`` without ``given`` clears first_name).

References (Appointment participants, Encounter subject and appointment)
    A reference equal to an entry's ``fullUrl`` (``urn:uuid:…`` or absolute) is that entry;
    ``Type/<id>`` (relative or absolute, ``_history`` ignored) is the bundle's entry of that
    type and ``id`` (whose external id may differ from its id), else the bundle's entry of that
    type whose external id is ``<id>``, else the stored record whose external id is ``<id>``.
    A ``urn:`` reference that matches no entry is an error where the patient or the
    appointment depends on it.

Appointment
    The first participant whose actor is a Patient gives the patient; a participant whose
    actor is a Practitioner gives the provider by its ``display``. ``start`` (with an offset)
    → start; ``minutesDuration``, else ``end`` - ``start`` → duration_minutes. ``status``:
    proposed, pending, booked → scheduled; arrived, checked-in → checked_in; fulfilled →
    completed; cancelled, entered-in-error → cancelled; noshow → no_show; any other code
    (``waitlist``) is an error. ``serviceType[0]``'s ``text``, else its
    ``coding[0].display`` → purpose. ``created`` (with an offset) → booked_at.

Encounter
    Status ``finished`` or ``in-progress`` is a checked-in visit; other statuses are skipped
    (counted, nothing stored). When ``appointment[0].reference`` names an Appointment of the
    bundle or a stored appointment, that appointment becomes completed (finished) or
    checked_in (in-progress), with checked_in_at = ``period.start``; when several encounters
    name one appointment, the later entry wins. Otherwise the visit is stored as the
    appointment ``encounter-<external id>``: patient from ``subject``, start and checked_in_at
    = ``period.start``, duration from ``period.end``, provider from a Practitioner
    participant's ``individual.display``.

Consent (DESIGN §5.8; docs/api.md has an example)
    One change of the consent ledger, source ``emr``, at ``dateTime`` (with an offset, not
    in the future). Channel: the ``category`` coding of system
    ``urn:trackstat:consent-channel`` with code ``sms`` or ``email`` (exactly one).
    Scope: marketing when ``provision.purpose`` holds ``HMARKT`` of
    ``http://terminology.hl7.org/CodeSystem/v3-ActReason``, else every message of the
    channel. ``status`` active: ``provision.type`` permit opts in (gives marketing consent),
    deny opts out (refuses it); rejected: opts out (refuses); inactive: marketing consent
    unknown again (an error about every message: an opt-out ends only by an active permit);
    draft, proposed, entered-in-error: skipped. ``patient`` references a Patient of the
    bundle or a stored patient of the practice. Wording: ``text.div`` as plain text, else
    ``sourceAttachment.title``. Known by ``Consent/<id>/_history/<meta.versionId>``, else
    ``Consent/<id>@<dateTime>``: a Consent already in the ledger is not recorded again. A
    Consent older than the latest ledger change of its patient, channel and scope is kept as
    history and changes nothing. Nested provisions and ``provision.period.end`` are errors.

Entry by entry
    As with ``POST /patients:bulk``, the valid entries are imported and each invalid one is
    reported: ``errors`` lists ``{"index": i, "resource_type", "external_id", "errors":
    {element: [messages]}}`` per entry at fault, with FHIR element names, never patient data.
    An entry is at fault when it cannot be mapped, when its record fails validation, or when
    the database refuses it (a reference to a patient that is neither in the bundle nor
    stored, a value that does not fit). An Encounter whose appointment is not imported is
    not applied, and says so. Patients are written before appointments, in one transaction;
    only a bundle that is not a Bundle at all (its type, its ``entry``) answers 400 with
    nothing stored. Sending the same bundle again changes nothing.
"""
