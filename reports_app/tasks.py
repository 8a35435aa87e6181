"""Celery tasks of the reports feature: they load rows by id and call a service."""

from __future__ import annotations

import smtplib

from celery import shared_task
from django.contrib.auth import get_user_model

from reports_app import comments
from reports_app.models import Comment

# The mail server is down, slow, or refusing for now: try again later.
SMTP_ERRORS = (smtplib.SMTPException, OSError)


@shared_task(
    name=comments.MENTION_EMAIL_TASK,
    autoretry_for=SMTP_ERRORS,
    retry_backoff=5,  # seconds, doubling per attempt
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=8,
)
def send_mention_email(comment_id: int, user_id: int) -> bool:
    """Tell a mentioned teammate; True when an email went out.

    At least once, not exactly once: with ``acks_late``, a worker that dies
    after the mail server accepted the message but before acknowledging the
    task sends it again on redelivery (as does a retry after an error raised
    once the message was accepted). A duplicate mention email is the lesser
    evil next to a lost one.
    """
    comment = (
        Comment.objects.select_related("author", "run__project__team", "report__project__team")
        .filter(pk=comment_id)
        .first()
    )
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if comment is None or user is None:
        return False  # deleted since: nothing to tell
    return comments.mention_email_send(comment=comment, user=user)
