"""Team invitations: an owner invites, the invitee accepts or declines (security review 16 #6).

Nobody joins a team without saying yes. An owner invites a username or an
email address; the invitee accepts while logged in, and only then becomes a
member.

What the owner learns is the same whether or not the name has an account:
the answer is "Invitation sent to <what they typed>", and the pending list
shows what they typed, the role and the expiry — never an email address,
another name or a hint that an account exists. Every invitation queues its
email task the same way (the task finds out whether there is anyone to
write to), so the answer's timing does not tell either.

Who may answer depends on what the owner typed:

* **A username** names that account (if it exists): its owner answers from
  their settings page, the API (by id) or the emailed link, and no other
  account can, even holding the link.
* **An email address** belongs to no account. Users set their own address
  without proving they read it, so an account's address proves nothing.
  Only the emailed link answers it: its token shows that the person reads
  that mailbox, and whichever account is logged in when the link is opened
  accepts or declines. Such an invitation is in nobody's list and is not
  found by id, whatever address an account has.

The token alone never answers: a login is needed too, and the accept's
audit event says it came through the link.

Writes and the access-checked reads of invitations live together here, as
comments do in ``reports_app.comments``.
"""

from __future__ import annotations

import secrets
from functools import partial
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q, QuerySet
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditAction
from audit.services import audit_record
from kernel.errors import ApplicationError, Conflict, NotFound, invalid
from kernel.ids import is_id
from kernel.tasks import queue_task
from tracking.models import INVITATION_TTL, Membership, Role, Team, TeamInvitation
from tracking.services import _audit_member, token_hash
from tracking.validation import clean_text

INVITATION_EMAIL_TASK = "tracking.send_invitation_email"  # tracking.tasks

INVITATION_PREFIX = "lbi_"
EMAIL_TEMPLATES = "tracking/emails/invitation"
FIELD = "member"  # the form field and the API field that names the invitee
VIA_LINK = "emailed link"  # the audit event of an accept through the link says so


class InvitationClosed(ApplicationError):
    """The invitation was used, declined, revoked or has expired: a new one is needed."""

    status = 409

    def __init__(self, invitation: TeamInvitation) -> None:
        state = invitation.state
        super().__init__(f"invitation_{state}", f"This invitation {_SAID[state]}.")


_SAID = {
    "accepted": "was already accepted",
    "declined": "was declined",
    "revoked": "was withdrawn by the team's owners",
    "expired": "has expired: ask an owner of the team for a new one",
}


# --- Reads ----------------------------------------------------------------------------------


def _open() -> Q:
    return Q(
        accepted_at__isnull=True,
        declined_at__isnull=True,
        revoked_at__isnull=True,
        expires_at__gt=timezone.now(),
    )


def _to_username_of(user: User) -> Q:
    """What ``user`` answers in their list and by id: invitations to their username only."""
    return Q(user_id=user.pk, email="")


def team_invitations(team: Team) -> QuerySet[TeamInvitation]:
    """The team's pending invitations, newest first (for its owners)."""
    return TeamInvitation.objects.filter(_open(), team=team).select_related("invited_by")


def invitation_get_for_team(team: Team, invitation_id: int) -> TeamInvitation:
    if not is_id(invitation_id):
        raise NotFound("Invitation")
    invitation = TeamInvitation.objects.filter(team=team, pk=invitation_id).first()
    if invitation is None:
        raise NotFound("Invitation")
    return invitation


def invitations_for_user(user: User) -> QuerySet[TeamInvitation]:
    """The pending invitations to the user's username, newest first, with teams and inviters.

    Invitations to an email address are not here: only their emailed link answers them.
    """
    if not user.is_authenticated:
        return TeamInvitation.objects.none()
    mine = TeamInvitation.objects.filter(_open(), _to_username_of(user))
    return mine.exclude(team__memberships__user_id=user.pk).select_related("team", "invited_by")


def invitation_get_for_user(user: User, invitation_id: int) -> TeamInvitation:
    """One invitation to ``user``'s username, in any state; any other is ``NotFound``.

    An invitation to an email address is ``NotFound`` here whatever the user's
    address: it is answered through its emailed link only.
    """
    if not is_id(invitation_id):
        raise NotFound("Invitation")
    found = TeamInvitation.objects.filter(_to_username_of(user), pk=invitation_id)
    invitation = found.select_related("team", "invited_by").first()
    if invitation is None:
        raise NotFound("Invitation")
    return invitation


class NotYours(ApplicationError):
    status = 403

    def __init__(self) -> None:
        super().__init__(
            "not_your_invitation",
            "This invitation was sent to someone else: log in with the account it was sent to.",
        )


def invitation_get_by_token(user: User, raw: str) -> TeamInvitation:
    """The invitation of an emailed link, for whoever holds it and is logged in as ``user``.

    An invitation to an email address is anyone's who has the link (the token
    proves they read the mailbox); one to a username is that account's only,
    and ``NotYours`` for any other.
    """
    if not isinstance(raw, str) or not raw.startswith(INVITATION_PREFIX) or len(raw) > 100:
        raise NotFound("Invitation")
    found = TeamInvitation.objects.filter(token_hash=token_hash(raw))
    invitation = found.select_related("team", "invited_by").first()
    if invitation is None:
        raise NotFound("Invitation")
    if not invitation.email and invitation.user_id != user.pk:
        raise NotYours()
    return invitation


# --- Writes ---------------------------------------------------------------------------------


def _clean_invitee(value: Any) -> tuple[str, str, User | None]:
    """``(invited_as, email, user)`` from what the owner typed.

    An "@" makes it an email invitation, whatever accounts exist: deciding by
    the input alone is what keeps the answer from telling anything.
    """
    value = clean_text(value, field=FIELD, max_length=254).strip()
    if not value:
        raise invalid(FIELD, "Enter a username or an email address.")
    if "@" in value:
        try:
            validate_email(value)
        except ValidationError:
            raise invalid(FIELD, f"{value!r} is not an email address.") from None
        return value.lower(), value.lower(), None
    user = get_user_model().objects.filter(username=value, is_active=True).first()
    return value, "", user


def _refuse_a_member(team: Team, invited_as: str, email: str) -> None:
    """Members are listed to owners anyway (with their addresses): saying so tells nothing."""
    members = Membership.objects.filter(team=team)
    if email:
        members = members.filter(user__email__iexact=email)
    else:
        members = members.filter(user__username=invited_as)
    if members.exists():
        raise invalid(FIELD, f"{invited_as} is already a member of {team.slug}.")


def _refuse_a_second(team: Team, invited_as: str) -> None:
    """One open invitation per name: an expired one is closed, a pending one refuses."""
    now = timezone.now()
    still_open = TeamInvitation.objects.filter(
        team=team,
        invited_as=invited_as,
        accepted_at__isnull=True,
        declined_at__isnull=True,
        revoked_at__isnull=True,
    )
    still_open.filter(expires_at__lte=now).update(revoked_at=now)
    if still_open.exists():
        raise _already_invited(team, invited_as)


def _already_invited(team: Team, invited_as: str) -> ApplicationError:
    return ApplicationError(
        "already_invited",
        f"{invited_as} already has a pending invitation to {team.slug}: revoke it to invite again.",
        field=FIELD,
    )


@transaction.atomic
def invitation_create(
    *,
    team: Team,
    invitee: Any,
    role: Any,
    actor: User | None,
    ip: str | None = None,
) -> tuple[TeamInvitation, str]:
    """Invite a username or an email address; ``(invitation, raw token)``.

    The caller checked that ``actor`` owns ``team``. The email goes out after
    commit, through a Celery task, for every invitation alike.
    """
    if not isinstance(role, str) or role not in Role.values:
        raise invalid("role", f"Role must be one of {', '.join(Role.values)}.")
    invited_as, email, user = _clean_invitee(invitee)
    _refuse_a_member(team, invited_as, email)
    _refuse_a_second(team, invited_as)
    raw = INVITATION_PREFIX + secrets.token_urlsafe(32)
    now = timezone.now()
    try:
        with transaction.atomic():
            invitation = TeamInvitation.objects.create(
                team=team,
                invited_as=invited_as,
                email=email,
                user=user,
                role=role,
                invited_by=actor,
                token_hash=token_hash(raw),
                created_at=now,
                expires_at=now + INVITATION_TTL,
            )
    except IntegrityError:  # the same invitation sent twice at once: one wins
        raise _already_invited(team, invited_as) from None
    _audit(AuditAction.INVITATION_CREATED, invitation, actor=actor, ip=ip)
    transaction.on_commit(partial(_queue_email, invitation.pk, raw))
    return invitation, raw


def _queue_email(invitation_id: int, raw: str) -> None:
    queue_task(INVITATION_EMAIL_TASK, invitation_id, raw)


def _audit(
    action: str,
    invitation: TeamInvitation,
    *,
    actor: User | None,
    ip: str | None,
    actor_name: str | None = None,
    extra: dict[str, str] | None = None,
) -> None:
    audit_record(
        action=action,
        actor=actor,
        team=invitation.team,
        target=invitation,
        data={"role": invitation.role, **(extra or {})},
        ip=ip,
        actor_name=actor_name,
    )


def _close(invitation: TeamInvitation, stamp: str) -> None:
    """Set ``<stamp>_at`` if the invitation is still open (compare-and-set), else refuse."""
    now = timezone.now()
    if not TeamInvitation.objects.filter(_open(), pk=invitation.pk).update(**{stamp: now}):
        invitation.refresh_from_db()
        raise InvitationClosed(invitation)
    setattr(invitation, stamp, now)


@transaction.atomic
def invitation_accept(
    *, invitation: TeamInvitation, user: User, ip: str | None = None, by_link: bool = False
) -> Membership:
    """Join the team with the invitation's role.

    The caller found the invitation for ``user``: ``invitation_get_for_user``
    (``by_link`` False) or ``invitation_get_by_token`` (``by_link`` True, which
    the audit event notes).
    """
    team = invitation.team
    _close(invitation, "accepted_at")  # first: a used invitation says so, whoever asks
    if Membership.objects.filter(team=team, user=user).exists():
        raise Conflict("already_member", f"You are already a member of {team.slug}.")
    membership = Membership.objects.create(team=team, user=user, role=invitation.role)
    extra = {"via": VIA_LINK} if by_link else None
    _audit(AuditAction.INVITATION_ACCEPTED, invitation, actor=user, ip=ip, extra=extra)
    _audit_member(team=team, user=user, old=None, new=invitation.role, actor=user, ip=ip)
    return membership


@transaction.atomic
def invitation_decline(*, invitation: TeamInvitation, user: User, ip: str | None = None) -> None:
    """Say no. The event names no account: declining must not tell the team who was asked."""
    _close(invitation, "declined_at")
    _audit(AuditAction.INVITATION_DECLINED, invitation, actor=None, ip=None, actor_name="invitee")


@transaction.atomic
def invitation_revoke(
    *, invitation: TeamInvitation, actor: User | None, ip: str | None = None
) -> None:
    _close(invitation, "revoked_at")
    _audit(AuditAction.INVITATION_REVOKED, invitation, actor=actor, ip=ip)


# --- The email ------------------------------------------------------------------------------


def invitation_url(raw: str) -> str:
    return settings.BASE_URL + reverse("invitation", kwargs={"code": raw})


def invitation_recipient(invitation: TeamInvitation) -> str:
    """The address to write to: the typed one, or the invited account's; "" for nobody."""
    if invitation.email:
        return invitation.email
    return (invitation.user.email or "").strip() if invitation.user else ""


def invitation_email_send(*, invitation: TeamInvitation, raw: str) -> bool:
    """Email the link; False when there is nobody to write to or the invitation closed since."""
    recipient = invitation_recipient(invitation)
    if not recipient or invitation.state != "pending":
        return False
    context = {
        "team": invitation.team.name or invitation.team.slug,
        "slug": invitation.team.slug,
        "inviter": invitation.invited_by.get_username() if invitation.invited_by else "An owner",
        "role": invitation.role,
        "url": invitation_url(raw),
        "expires_at": invitation.expires_at,
        "by_link_only": bool(invitation.email),  # whoever opens it answers: say so
    }
    subject = render_to_string(f"{EMAIL_TEMPLATES}_subject.txt", context)
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split()),  # team names are user input: no line breaks
        body=render_to_string(f"{EMAIL_TEMPLATES}.txt", context),
        to=[recipient],
    )
    message.attach_alternative(render_to_string(f"{EMAIL_TEMPLATES}.html", context), "text/html")
    message.send()
    return True
