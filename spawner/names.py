"""Safe internal names for user and server names.

JupyterHub accepts server names that cannot be used as they are for a folder
or a Kubernetes object (``$p~c|a! ch@rs``, ``hash#?question``, ``..``).
The bundle never refuses such a name: it derives a safe name instead, the way
KubeSpawner's ``safe`` slug scheme does for pods and volumes.

The rule (pure, stable across releases, documented in docs/architecture.md):

- a name that is already safe — 1 to 63 characters from ``A-Z a-z 0-9 . _ -``,
  starting with a letter or digit, without ``..`` or ``---`` — is used
  unchanged, so ordinary names keep readable folders;
- any other name becomes ``<slug>---<hash>``: the slug is the name lowercased
  with every run of other characters turned into one ``-`` (trimmed, at most
  40 characters, ``x`` when nothing is left), the hash the first 8 hex digits
  of SHA-256 over the UTF-8 name.

Names used unchanged never contain ``---`` and derived names always do, so
two different names never share a folder (short of a SHA-256 prefix collision).
"""

from __future__ import annotations

import hashlib
import re

_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
_UNSAFE_RUN = re.compile(r"[^a-z0-9]+")
SLUG_LENGTH = 40
HASH_LENGTH = 8


def is_safe_name(name: str) -> bool:
    return bool(_SAFE.match(name)) and ".." not in name and "---" not in name


def safe_name(name: str) -> str:
    """``name`` itself when safe, else ``<slug>---<hash>`` (see the module docstring)."""
    if is_safe_name(name):
        return name
    slug = _UNSAFE_RUN.sub("-", name.lower()).strip("-")[:SLUG_LENGTH].strip("-") or "x"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:HASH_LENGTH]
    return f"{slug}---{digest}"
