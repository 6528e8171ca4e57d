"""A testing kit for code that calls Opper's usage API: a local server that answers like it.

```python
from opperai_usage import Opper
from opperai_usage.testing import UsageServer

with UsageServer(seed=7) as server:
    with Opper(api_key="test", server_url=server.url) as opper:
        items = opper.analytics.get_usage(group_by=["model"])
    server.enqueue(status=503)           # script the next answers
    assert server.requests[0].query == {"group_by": ["model"]}
```

Standard library only, and imported only when this module is: `import opperai_usage` does not
load it. With pytest, the fixture `opper_usage_server` gives a started `UsageServer(api_key=
"test")` for one test. `python -m opperai_usage.testing` runs the same server as a process.
"""

from ._server import UsageServer
from ._state import RecordedRequest

__all__ = ["RecordedRequest", "UsageServer"]
