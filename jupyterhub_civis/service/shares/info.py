"""What the share store hands out: a share, its versions, its audit events."""

from __future__ import annotations

from dataclasses import dataclass, field

from jupyterhub_civis.service.shares import policy


@dataclass
class VersionInfo:
    number: int
    created: float
    size: int
    sha256: str
    environment: dict
    results: list[str]

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class ShareInfo:
    id: str
    owner: str
    kind: str
    title: str
    path: str
    server: str
    created: float
    updated: float
    expires: float | None
    revoked: float | None
    audience: policy.Audience
    versions: list[VersionInfo] = field(default_factory=list)
    #: results the notebook pins that the owner does not hold (not carried)
    missing_results: list[str] = field(default_factory=list)

    @property
    def state(self) -> policy.ShareState:
        return policy.ShareState(self.owner, self.audience, self.expires, self.revoked)

    @property
    def latest(self) -> VersionInfo | None:
        return self.versions[-1] if self.versions else None

    def carries(self, result_id: str) -> bool:
        """Whether one of the share's versions carries (pins) ``result_id``."""
        return any(result_id in v.results for v in self.versions)

    @property
    def display_title(self) -> str:
        return policy.display_title(self.title, self.path)

    def to_json(self, *, for_owner: bool) -> dict:
        out = {
            "id": self.id,
            "owner": self.owner,
            "kind": self.kind,
            "title": self.display_title,
            "path": self.path,
            "server": self.server,
            "created": self.created,
            "updated": self.updated,
            "expires": self.expires,
            "versions": [v.to_json() for v in self.versions],
        }
        if for_owner:
            out.update(
                revoked=self.revoked,
                audience={
                    "users": sorted(self.audience.users),
                    "groups": sorted(self.audience.groups),
                    "everyone": self.audience.everyone,
                },
            )
            if self.missing_results:
                out["missing_results"] = self.missing_results
        return out


@dataclass(frozen=True)
class Event:
    user: str
    action: str
    number: int
    at: float

    def to_json(self) -> dict:
        return dict(self.__dict__)
