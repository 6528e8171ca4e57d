"""Maintainer tooling, run by nox and never installed with the package.

- `update_spec`: Opper's published API description -> `openapi.yaml` (the operation this client
  covers, the project's overlay applied), with a change report; `nox -s update-spec`.
- `spec_diff`: the changes between two descriptions, classified from this client's point of
  view (breaking, non-breaking, annotation); `nox -s spec-diff`.
- `live_contract`: valid calls to the live API, each answer checked against `openapi.yaml`;
  `nox -s live-contract`.
"""
