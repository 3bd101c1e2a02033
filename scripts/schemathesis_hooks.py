"""Authentication for the Schemathesis run against a real Keyward.

The run holds an owner's management key with every scope, so it can lock itself out as any
caller could: revoke or rotate its own key, narrow its allowlist, add an owner and demote the
first. Before each request this checks, at most every two seconds, that the key may still change
the organization; when it may not, it takes a fresh organization (`keyward orgs create`, run on
the database the server uses) and goes on with that organization's key.
"""

import json
import os
import subprocess
import time
import urllib.error
import urllib.request

import schemathesis

BASE_URL = os.environ["KEYWARD_FUZZ_URL"]
KEYWARD = os.environ["KEYWARD_FUZZ_BINARY"]


def usable(key):
    request = urllib.request.Request(
        f"{BASE_URL}/v1/org",
        data=b"{}",
        method="PATCH",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status == 200
    except urllib.error.HTTPError:
        return False


def new_organization(n):
    out = subprocess.run(
        [KEYWARD, "orgs", "create", "--name", f"Fuzzed {n}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return next(line for line in out.splitlines() if line.startswith("kw_live_"))


@schemathesis.auth(refresh_interval=None)
class ManagementKey:
    def __init__(self):
        self.key = os.environ["KEYWARD_FUZZ_KEY"]
        self.checked = 0.0
        self.organizations = 0

    def get(self, case, ctx):
        now = time.monotonic()
        if now - self.checked >= 2.0:
            self.checked = now
            if not usable(self.key):
                self.organizations += 1
                self.key = new_organization(self.organizations)
        return self.key

    def set(self, case, data, ctx):
        case.headers = case.headers or {}
        case.headers["Authorization"] = f"Bearer {data}"
