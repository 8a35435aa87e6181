"""Celery tasks of tracking: thin wrappers over services (scheduled in labbook/celery.py)."""

from __future__ import annotations

import smtplib

from celery import shared_task

from tracking import invitations
from tracking.ingest import ingest_batches_prune
from tracking.models import TeamInvitation


@shared_task(name="tracking.ingest_batches_prune")
def prune_ingest_batches() -> int:
    return ingest_batches_prune()


@shared_task(
    name=invitations.INVITATION_EMAIL_TASK,
    autoretry_for=(smtplib.SMTPException, OSError),  # the mail server is down or slow: later
    retry_backoff=5,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def send_invitation_email(invitation_id: int, raw: str) -> bool:
    """Email an invitation's link; True when an email went out.

    Queued for every invitation, whether or not anyone can receive it, so the
    owner's answer takes the same time either way. ``raw`` passes through the
    broker: it only finds the invitation, and accepting takes the invitee's login.
    """
    invitation = (
        TeamInvitation.objects.select_related("team", "user", "invited_by")
        .filter(pk=invitation_id)
        .first()
    )
    if invitation is None:
        return False
    return invitations.invitation_email_send(invitation=invitation, raw=raw)
