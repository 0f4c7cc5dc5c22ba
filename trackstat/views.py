"""Pages of the tenancy core: sign-in, the practice switcher, Settings for Administrators."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, HttpResponsePermanentRedirect, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.templatetags.static import static
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from trackstat.client_address import client_address
from trackstat.confirm import confirmation_page, is_confirmed
from trackstat.credentials import (
    practice_credentials_status,
    provider_credentials_set,
    secret_decrypt,
    secret_encrypt,
)
from trackstat.events import webhook_deliveries_resend
from trackstat.forms import (
    ApiKeyForm,
    InviteForm,
    MessagingPolicyForm,
    PracticeSettingsForm,
    ProfileForm,
    ProviderCredentialsForm,
    RoleForm,
    ThrottledAuthenticationForm,
    time_zone_choices,
)
from trackstat.htmx import wants_partial
from trackstat.models import ApiKey, Membership, Role, WebhookDelivery, WebhookEndpoint
from trackstat.services import (
    PRACTICE_SETTINGS_FIELDS,
    api_key_create,
    api_key_revoke,
    invitation_send,
    membership_change_role,
    membership_invite,
    membership_remove,
    practice_policy_update,
    practice_settings_update,
)
from trackstat.tenancy import PracticeRequest, practice_switch, role_required
from trackstat.throttle import password_reset_allowed


class LoginView(auth_views.LoginView):
    form_class = ThrottledAuthenticationForm
    redirect_authenticated_user = True

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if getattr(form, "throttled", False):
            response.status_code = 429
        return response


class PasswordResetView(auth_views.PasswordResetView):
    """Django's password reset, throttled per email and per client address. A throttled
    request gets the same answer as any other (the "sent" page) and no email: the answer
    never tells whether the address has an account or was throttled."""

    def form_valid(self, form):
        if not password_reset_allowed(
            email=form.cleaned_data["email"], address=client_address(self.request)
        ):
            return HttpResponseRedirect(self.get_success_url())
        return super().form_valid(form)


def favicon(request) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever the page says: the same icon (its static URL
    looked up per request, so the manifest is read only once static files are collected)."""
    return HttpResponsePermanentRedirect(static("img/favicon.svg"))


def api_docs(request) -> HttpResponse:
    """The browsable API documentation: Swagger UI served from our own static files."""
    return render(request, "trackstat/api_docs.html")


@login_required
def profile(request: PracticeRequest) -> HttpResponse:
    """The signed-in user's own name and mobile phone."""
    form = ProfileForm(request.POST or None, instance=request.user)
    if request.method == "POST":
        if form.is_valid():
            form.save()
            messages.success(request, "Profile saved.")
            return redirect("profile")
        return render(request, "trackstat/profile.html", {"form": form}, status=400)
    return render(request, "trackstat/profile.html", {"form": form})


@require_POST
@login_required
def practice_switch_view(request: PracticeRequest) -> HttpResponse:
    try:
        practice_id = int(request.POST.get("practice", ""))
    except ValueError:
        raise Http404 from None
    if not practice_switch(request, practice_id):
        raise Http404
    return redirect("home")


def _members_context(request: PracticeRequest, **extra) -> dict:
    memberships = (
        Membership.objects.filter(practice=request.practice)
        .select_related("user")
        .order_by("-role", "user__email")
    )
    return {
        "memberships": memberships,
        "roles": Role.choices,
        "invite_form": extra.pop("invite_form", None) or InviteForm(),
        **extra,
    }


@role_required(Role.ADMINISTRATOR)
def settings_users(request: PracticeRequest) -> HttpResponse:
    """Users and roles: invite by email, change a role, remove a member."""
    if request.method == "POST":
        form = InviteForm(request.POST)
        if form.is_valid():
            try:
                membership, new_account = membership_invite(
                    practice=request.practice,
                    email=form.cleaned_data["email"],
                    role=Role(form.cleaned_data["role"]),
                    actor=request.user,
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                invitation_send(membership=membership, new_account=new_account)
                messages.success(request, f"Invited {membership.user.email}.")
                return redirect("settings_users")
        return render(
            request,
            "trackstat/settings_users.html",
            _members_context(request, invite_form=form),
            status=400,
        )
    return render(request, "trackstat/settings_users.html", _members_context(request))


@require_POST
@role_required(Role.ADMINISTRATOR)
def member_role(request: PracticeRequest, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(Membership, pk=membership_id, practice=request.practice)
    form = RoleForm(request.POST)
    error = None
    if form.is_valid():
        try:
            membership = membership_change_role(
                practice=request.practice,
                membership_id=membership.pk,
                role=Role(form.cleaned_data["role"]),
                actor=request.user,
            )
        except ValidationError as exc:
            error = " ".join(exc.messages)
    else:
        error = "Choose a role."
    if wants_partial(request):
        membership.refresh_from_db()
        return render(
            request,
            "trackstat/settings_users.html#member-row",
            {"membership": membership, "roles": Role.choices, "row_error": error},
            status=400 if error else 200,
        )
    if error:
        messages.error(request, error)
    else:
        messages.success(
            request, f"{membership.user.email} is now {membership.get_role_display()}."
        )
    return redirect("settings_users")


@require_POST
@role_required(Role.ADMINISTRATOR)
def member_remove(request: PracticeRequest, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(Membership, pk=membership_id, practice=request.practice)
    if not is_confirmed(request):
        return confirmation_page(
            request,
            question=f"Remove {membership.user.email} from {request.practice.name}?",
            detail="They lose access to its patients and campaigns at once.",
            confirm_label="Remove",
            cancel_url=reverse("settings_users"),
        )
    try:
        membership_remove(
            practice=request.practice, membership_id=membership.pk, actor=request.user
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Removed {membership.user.email}.")
    return redirect("settings_users")


@role_required(Role.ADMINISTRATOR)
def settings_practice(request: PracticeRequest) -> HttpResponse:
    """Practice settings: time zone, sending window, sender phone and email."""
    form = PracticeSettingsForm(request.POST or None, instance=request.practice)
    if request.method == "POST":
        if form.is_valid():
            try:
                practice_settings_update(
                    practice=request.practice,
                    actor=request.user,
                    **{name: form.cleaned_data[name] for name in PRACTICE_SETTINGS_FIELDS},
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(request, "Practice settings saved.")
                return redirect("settings_practice")
        context = {"form": form, "time_zones": time_zone_choices()}
        return render(request, "trackstat/settings_practice.html", context, status=400)
    context = {"form": form, "time_zones": time_zone_choices()}
    return render(request, "trackstat/settings_practice.html", context)


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMINISTRATOR)
def settings_policy(request: PracticeRequest) -> HttpResponse:
    """The messaging policy: caps per purpose, marketing opt-in, state rules (audited)."""
    form = MessagingPolicyForm(request.POST or None, initial=request.practice.policy)
    if request.method == "POST":
        if form.is_valid():
            practice_policy_update(
                practice=request.practice, actor=request.user, changes=dict(form.cleaned_data)
            )
            messages.success(request, "Messaging policy saved.")
            return redirect("settings_policy")
        return render(request, "trackstat/settings_policy.html", {"form": form}, status=400)
    return render(request, "trackstat/settings_policy.html", {"form": form})


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMINISTRATOR)
def settings_providers(request: PracticeRequest) -> HttpResponse:
    """Provider credentials: the practice's own Twilio and SendGrid accounts, secrets never
    shown back."""
    row = getattr(request.practice, "provider_credentials", None)
    initial = {"twilio_account_sid": row.twilio_account_sid if row else ""}
    form = ProviderCredentialsForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                provider_credentials_set(
                    practice=request.practice, actor=request.user, **form.changes()
                )
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(request, "Provider credentials saved.")
                return redirect("settings_providers")
        status = 400
    context = {"form": form, "stored": practice_credentials_status(request.practice)}
    return render(request, "trackstat/settings_providers.html", context, status=status)


ISSUED_KEY_SESSION = "api_key_issued"


@role_required(Role.ADMINISTRATOR)
def settings_api_keys(request: PracticeRequest) -> HttpResponse:
    """API keys: created and shown once, stored hashed, revocable."""
    form = ApiKeyForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            issued = api_key_create(
                practice=request.practice, name=form.cleaned_data["name"], actor=request.user
            )
            # Post/Redirect/Get: a refresh must not create a second key. The secret is shown
            # once, by the page the redirect lands on, which takes it out of the session;
            # meanwhile the session holds it encrypted, never in the clear.
            request.session[ISSUED_KEY_SESSION] = {
                "practice": request.practice.pk,
                "name": issued.api_key.name,
                "secret": secret_encrypt(issued.secret),
            }
            return redirect("settings_api_keys")
        status = 400
    issued = request.session.pop(ISSUED_KEY_SESSION, None)
    if issued and issued.get("practice") == request.practice.pk:
        issued = {"name": issued["name"], "secret": secret_decrypt(issued["secret"])}
    else:
        issued = None
    keys = ApiKey.objects.filter(practice=request.practice).select_related("created_by")
    return render(
        request,
        "trackstat/settings_api_keys.html",
        {"form": form, "issued": issued, "api_keys": keys},
        status=status,
    )


@require_POST
@role_required(Role.ADMINISTRATOR)
def api_key_revoke_view(request: PracticeRequest, api_key_id: int) -> HttpResponse:
    api_key = get_object_or_404(ApiKey, pk=api_key_id, practice=request.practice)
    if not is_confirmed(request):
        return confirmation_page(
            request,
            question=f"Revoke the API key “{api_key.name}”?",
            detail="Connectors using it stop working at once; this cannot be undone.",
            confirm_label="Revoke",
            cancel_url=reverse("settings_api_keys"),
        )
    api_key_revoke(practice=request.practice, api_key_id=api_key.pk, actor=request.user)
    messages.success(request, f"Revoked {api_key.name}.")
    return redirect(reverse("settings_api_keys"))


DELIVERY_LOG_LENGTH = 100


@role_required(Role.ADMINISTRATOR)
def settings_webhooks(request: PracticeRequest) -> HttpResponse:
    """The practice's outbound webhooks and the latest deliveries with every attempt."""
    endpoints = WebhookEndpoint.objects.filter(practice=request.practice).order_by("pk")
    deliveries = (
        WebhookDelivery.objects.filter(practice=request.practice)
        .select_related("event", "endpoint")
        .prefetch_related("attempt_log")
        .order_by("-pk")[:DELIVERY_LOG_LENGTH]
    )
    return render(
        request,
        "trackstat/settings_webhooks.html",
        {"endpoints": endpoints, "deliveries": deliveries},
    )


@require_POST
@role_required(Role.ADMINISTRATOR)
def webhook_resend_view(request: PracticeRequest, delivery_id: int) -> HttpResponse:
    delivery = get_object_or_404(WebhookDelivery, pk=delivery_id, practice=request.practice)
    webhook_deliveries_resend(
        practice=request.practice, deliveries=[delivery.pk], now=timezone.now()
    )
    messages.success(request, "Queued to be sent again within a minute.")
    return redirect(reverse("settings_webhooks"))
