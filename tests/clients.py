"""Test clients."""

from __future__ import annotations

from django.test import Client, TestCase


class CommitClient(Client):
    """A client whose requests end as real ones do: what a view put off until its
    transaction commits (``transaction.on_commit``, such as queueing a task) runs when the
    response is back. A test's own transaction never commits, so without this those callbacks
    would never run."""

    def request(self, **request):
        with TestCase.captureOnCommitCallbacks(execute=True):
            return super().request(**request)
