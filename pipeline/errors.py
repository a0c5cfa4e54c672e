"""The exceptions b2b-enrich raises, and the exit code each one maps to.

EnrichError                 base class; exit 1
├── InputError              bad usage, file, column or setting; nothing was sent; exit 2
│   └── CheckpointError     the checkpoint is not ours, too new, or from another API; exit 2
├── AuthError               the API rejected the key; exit 4
└── StoppedEarly            the job stopped with work left; resumable; exit 3
    ├── OutOfCredits        the account has no credits left (HTTP 402)
    ├── BudgetReached       --max-credits would be exceeded by one more lookup
    └── Interrupted         SIGINT / SIGTERM
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_UNEXPECTED = 1
EXIT_INPUT = 2
EXIT_RESUMABLE = 3
EXIT_AUTH = 4


class EnrichError(Exception):
    """Anything b2b-enrich reports to its caller instead of crashing."""

    exit_code = EXIT_UNEXPECTED


class InputError(EnrichError):
    """The input, output, a column or a setting is unusable; no request was sent."""

    exit_code = EXIT_INPUT


class CheckpointError(InputError):
    """The checkpoint file cannot be used for this job."""


class AuthError(EnrichError):
    """The API rejected the key (HTTP 401)."""

    exit_code = EXIT_AUTH


class StoppedEarly(EnrichError):
    """The job stopped with lookups left; the same command resumes it.

    `summary` is attached by the job runner once the output has been written.
    """

    exit_code = EXIT_RESUMABLE
    summary: object | None = None


class OutOfCredits(StoppedEarly):
    """The account ran out of credits (HTTP 402)."""


class BudgetReached(StoppedEarly):
    """Another lookup could take the run past --max-credits."""


class Interrupted(StoppedEarly):
    """SIGINT or SIGTERM asked the job to stop."""
