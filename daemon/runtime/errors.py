"""Errors of the character runtime. Each names what was wrong; none changes anything.

ClientError
├── CardError                   a Character Card file or JSON we cannot read
└── RegistryError
    ├── UnknownVersionError     no such version of that character
    ├── VersionExistsError      registering a version string twice
    ├── NoPreviousVersionError  rollback with nothing to roll back to
    ├── NotDeployedError        nothing serves in that environment, or a named
    │                           rollback target never served there
    ├── GateFailedError         the validation gate refused the version (.report)
    ├── AdapterIntegrityError   adapter file missing, corrupt, or not the one
    │                           registered (sha256 differs)
    ├── ExperimentError         unknown experiment, bad variants, wrong status
    └── (RegistryError itself)  codes "already_serving", "conflict" (a concurrent
                                change: retry), "invalid_request" (bad names)
UnknownCharacterError           no version of that character is registered
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from personae.daemon.errors import ClientError

if TYPE_CHECKING:
    from personae.daemon.runtime.gate import GateReport


class CardError(ClientError):
    code = "invalid_card"


class RegistryError(ClientError):
    code = "registry_error"


class UnknownVersionError(RegistryError):
    code = "unknown_version"


class VersionExistsError(RegistryError):
    code = "version_exists"


class NoPreviousVersionError(RegistryError):
    code = "no_previous_version"


class NotDeployedError(RegistryError):
    code = "not_deployed"


class GateFailedError(RegistryError):
    code = "validation_failed"

    def __init__(self, message: str, *, report: GateReport) -> None:
        super().__init__(message)
        self.report = report


class AdapterIntegrityError(RegistryError):
    code = "adapter_corrupt"


class ExperimentError(RegistryError):
    code = "experiment_error"
