"""The changes between two descriptions of `GET /analytics/usage`, classified from this
client's point of view.

- breaking: a request this client sends may now be refused or mean something else, or an
  answer it decodes may now hold what it does not expect. A parameter removed or renamed, or
  now required; a request type narrowed (a type, a value or an enum value no longer accepted,
  a tighter bound); style or explode changed; a response field removed, retyped, made
  nullable, optional or wider; a documented status or content type removed, or its schema
  widened; the server or the security changed.
- non-breaking: a new optional parameter, request enum value, response field or status; a
  request type widened; a response type narrowed.
- annotation: descriptions, examples, titles, summaries and the like.

Requests and answers go opposite ways: a schema that accepts more is safe for what the client
sends and unsafe for what it decodes, so every schema is compared with a direction. A change
that no rule here knows is reported as breaking, and says so, rather than dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from tools.extract import METHOD, OPERATION, PATH

Kind = Literal["breaking", "non-breaking", "annotation"]
Verb = Literal["added", "removed", "changed"]
Direction = Literal["request", "response"]
KINDS: tuple[Kind, ...] = ("breaking", "non-breaking", "annotation")

#: Keys that only document: their changes are annotations.
ANNOTATIONS = frozenset(
    {
        "title",
        "description",
        "summary",
        "example",
        "examples",
        "$comment",
        "externalDocs",
        "deprecated",
        "tags",
        "operationId",
    }
)
#: The `info` field update-spec records its source in: not part of the API.
OWN_RECORD = "x-upstream"
#: A schema that accepts anything (`true`, `{}`), as opposed to typed alternatives.
ANY = "any JSON value"
UNIONS = ("anyOf", "oneOf")
LOWER_BOUNDS = ("minLength", "minItems", "minProperties", "minimum", "exclusiveMinimum")
UPPER_BOUNDS = ("maxLength", "maxItems", "maxProperties", "maximum", "exclusiveMaximum")
#: Schema keywords the rules below read; a change in any other is caught by the last rule.
SCHEMA_KEYWORDS = frozenset(
    {
        "type",
        "enum",
        "const",
        "format",
        "pattern",
        "items",
        "properties",
        "required",
        "additionalProperties",
        "default",
        "uniqueItems",
        "multipleOf",
        "nullable",
        "$ref",
        "allOf",
        *UNIONS,
        *LOWER_BOUNDS,
        *UPPER_BOUNDS,
    }
)
OPERATION_KEYS = frozenset({"parameters", "requestBody", "responses", "security", "servers"})
PARAMETER_KEYS = frozenset(
    {"name", "in", "required", "style", "explode", "allowReserved", "schema", "content"}
)
RESPONSE_KEYS = frozenset({"content", "headers"})


@dataclass(frozen=True)
class Change:
    """One difference: its class, the sort of change (for a changelog), where it is (a JSON
    pointer into the new document, or into the old one for what was removed), and what."""

    type: Kind
    change: Verb
    path: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {
            "type": self.type,
            "change": self.change,
            "path": self.path,
            "message": self.message,
        }


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    """Every change from `old` to `new`, two descriptions holding the operation; breaking ones
    first, then non-breaking ones, then annotations, each in document order."""
    differ = _Differ(old, new)
    differ.run()
    unique = list(dict.fromkeys(differ.changes))
    return sorted(unique, key=lambda change: KINDS.index(change.type))


def escape(key: str | int) -> str:
    """One JSON pointer segment."""
    return str(key).replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True)
class Node:
    """A value in one of the two documents, with its JSON pointer there."""

    value: Any
    pointer: str

    def child(self, *keys: str | int) -> Node:
        value, pointer = self.value, self.pointer
        for key in keys:
            if isinstance(value, dict):
                value = value.get(key)
            elif isinstance(value, list) and isinstance(key, int) and key < len(value):
                value = value[key]
            else:
                value = None
            pointer += "/" + escape(key)
        return Node(value, pointer)

    def get(self, key: str) -> Node | None:
        """The child at `key`, or None when there is none."""
        if isinstance(self.value, dict) and key in self.value:
            return self.child(key)
        return None

    def members(self) -> set[str]:
        return set(self.value) if isinstance(self.value, dict) else set()

    def names(self) -> list[str]:
        """The keys in document order."""
        return list(self.value) if isinstance(self.value, dict) else []


@dataclass
class Branch:
    """One alternative of a schema: a single JSON type (or any), its keywords, its pointer,
    and the component it names, if any (how `LocalDateTime` differs from `date-time`)."""

    type: str
    schema: dict[str, Any]
    pointer: str
    ref: str | None = None
    #: Where keys that came from around a union are written (their pointers).
    origins: dict[str, str] = field(default_factory=dict)

    @property
    def family(self) -> str:
        """Integers are numbers: the two are paired, and compared as a narrowing."""
        return "number" if self.type == "integer" else self.type

    def at(self, key: str) -> str:
        """The pointer to this branch's `key`, wherever it is written."""
        return f"{self.origins.get(key, self.pointer)}/{escape(key)}"

    def describe(self) -> str:
        """`string (date-time)`, `string (LocalDateTime)`, `null`: for messages."""
        detail = self.ref.rsplit("/", 1)[-1] if self.ref else self.schema.get("format")
        return f"{self.type} ({detail})" if detail else self.type


@dataclass
class _Differ:
    """One comparison: walks both documents part by part and collects the changes."""

    old: dict[str, Any]
    new: dict[str, Any]
    changes: list[Change] = field(default_factory=list)
    compared: set[tuple[str, str, str]] = field(default_factory=set)

    def add(self, kind: Kind, verb: Verb, path: str, message: str) -> None:
        self.changes.append(Change(kind, verb, path, message))

    def narrowed(self, direction: Direction, verb: Verb, path: str, message: str) -> None:
        """Fewer values fit: a request may now be refused; an answer only gets safer."""
        self.add("breaking" if direction == "request" else "non-breaking", verb, path, message)

    def widened(self, direction: Direction, verb: Verb, path: str, message: str) -> None:
        """More values fit: a request only gets safer; an answer may now hold what the client
        does not expect."""
        self.add("breaking" if direction == "response" else "non-breaking", verb, path, message)

    # -- the document's parts

    def run(self) -> None:
        old_op = Node(self.old, "").child("paths", PATH, METHOD)
        new_op = Node(self.new, "").child("paths", PATH, METHOD)
        self.info()
        self.servers(old_op, new_op)
        self.security(old_op, new_op)
        self.parameters(old_op, new_op)
        self.request_body(old_op, new_op)
        self.responses(old_op, new_op)
        self.annotations(old_op, new_op, OPERATION)
        for key in sorted((old_op.members() | new_op.members()) - OPERATION_KEYS - ANNOTATIONS):
            self.other(old_op, new_op, key, OPERATION)

    def info(self) -> None:
        old, new = Node(self.old, "").child("info"), Node(self.new, "").child("info")
        for key in sorted((old.members() | new.members()) - {OWN_RECORD}):
            before, after = old.child(key).value, new.child(key).value
            if before != after:
                verb = _verb(before, after)
                at = (old if after is None else new).child(key).pointer
                self.add("annotation", verb, at, f"info `{key}` {verb}")
        if self.old.get("tags") != self.new.get("tags"):
            self.add("annotation", "changed", "/tags", "tag descriptions changed")

    def servers(self, old_op: Node, new_op: Node) -> None:
        old, new = (
            self.effective_servers(self.old, old_op),
            self.effective_servers(self.new, new_op),
        )
        first_old = {k: v for k, v in (old.child(0).value or {}).items() if k != "description"}
        first_new = {k: v for k, v in (new.child(0).value or {}).items() if k != "description"}
        if first_old != first_new:
            self.add(
                "breaking",
                "changed",
                new.child(0).pointer,
                f"server changed from {first_old.get('url')} to {first_new.get('url')}: "
                "every request goes elsewhere",
            )
        old_urls = [s.get("url") for s in (old.value or [])[1:]]
        new_urls = [s.get("url") for s in (new.value or [])[1:]]
        if old_urls != new_urls:
            self.add(
                "non-breaking",
                "changed",
                new.pointer,
                f"other servers changed from {old_urls} to {new_urls} (the client uses the first)",
            )
        if [s.get("description") for s in old.value or []] != [
            s.get("description") for s in new.value or []
        ]:
            self.add("annotation", "changed", new.pointer, "server descriptions changed")

    @staticmethod
    def effective_servers(document: dict[str, Any], op: Node) -> Node:
        """The operation's servers, else its path's, else the document's (else "/")."""
        item = Node(document, "").child("paths", PATH)
        for holder in (op, item, Node(document, "")):
            if holder.child("servers").value:
                return holder.child("servers")
        return Node([{"url": "/"}], "/servers")

    def security(self, old_op: Node, new_op: Node) -> None:
        old = self.requirements(self.old, old_op)
        new = self.requirements(self.new, new_op)
        if _canonical(old.value) != _canonical(new.value):
            self.add(
                "breaking",
                "changed",
                new.pointer,
                f"security changed from {_names(old.value)} to {_names(new.value)}",
            )
        old_schemes = Node(self.old, "").child("components", "securitySchemes")
        new_schemes = Node(self.new, "").child("components", "securitySchemes")
        for name in sorted({n for r in old.value + new.value for n in r}):
            old_scheme, new_scheme = old_schemes.child(name), new_schemes.child(name)
            before = _without(old_scheme.value, ANNOTATIONS)
            after = _without(new_scheme.value, ANNOTATIONS)
            if before != after:
                self.add(
                    "breaking",
                    "changed",
                    new_scheme.pointer,
                    f"security scheme `{name}` changed from {before} to {after}",
                )
            else:
                self.annotations(old_scheme, new_scheme, f"security scheme `{name}`")

    @staticmethod
    def requirements(document: dict[str, Any], op: Node) -> Node:
        """The operation's security requirements, else the document's."""
        if "security" in op.members():
            return Node(op.value["security"] or [], op.pointer + "/security")
        return Node(document.get("security") or [], "/security")

    def parameters(self, old_op: Node, new_op: Node) -> None:
        old = self.parameter_nodes(self.old, old_op)
        new = self.parameter_nodes(self.new, new_op)
        removed = [key for key in old if key not in new]
        added = [key for key in new if key not in old]
        for name, where in removed:
            renamed = [n for n, w in added if w == where]
            hint = f" (renamed to `{renamed[0]}`?)" if len(removed) == len(renamed) == 1 else ""
            self.add(
                "breaking",
                "removed",
                old[name, where].pointer,
                f"{where} parameter `{name}` removed{hint}",
            )
        for name, where in added:
            node = new[name, where]
            if node.value.get("required"):
                self.add(
                    "breaking", "added", node.pointer, f"new required {where} parameter `{name}`"
                )
            else:
                self.add(
                    "non-breaking",
                    "added",
                    node.pointer,
                    f"new optional {where} parameter `{name}`",
                )
        for key in new:
            if key in old:
                self.parameter(old[key], new[key], f"{key[1]} parameter `{key[0]}`")

    def parameter_nodes(self, document: dict[str, Any], op: Node) -> dict[tuple[str, str], Node]:
        """The operation's parameters by (name, in): its path item's, then its own."""
        found: dict[tuple[str, str], Node] = {}
        for holder in (Node(document, "").child("paths", PATH), op):
            listed = holder.child("parameters")
            for index in range(len(listed.value or [])):
                parameter = self.resolve(document, listed.child(index))
                found[str(parameter.value.get("name")), str(parameter.value.get("in"))] = parameter
        return found

    def parameter(self, old: Node, new: Node, where: str) -> None:
        o, n = old.value, new.value
        if bool(o.get("required")) != bool(n.get("required")):
            if n.get("required"):
                self.add(
                    "breaking", "changed", new.pointer + "/required", f"{where} is now required"
                )
            else:
                self.add(
                    "non-breaking",
                    "changed",
                    new.pointer + "/required",
                    f"{where} is no longer required",
                )
        if _serialization(o) != _serialization(n):
            self.add(
                "breaking",
                "changed",
                new.pointer,
                f"{where}: serialization changed from {_serialization(o)} to "
                f"{_serialization(n)}: the client would encode it differently",
            )
        self.annotations(old, new, where)
        if "schema" in o or "schema" in n:
            self.schema(old.child("schema"), new.child("schema"), "request", where, "")
        self.content(old.child("content"), new.child("content"), "request", where)
        for key in sorted((old.members() | new.members()) - PARAMETER_KEYS - ANNOTATIONS):
            self.other(old, new, key, where)

    def request_body(self, old_op: Node, new_op: Node) -> None:
        old = self.resolve(self.old, old_op.child("requestBody"))
        new = self.resolve(self.new, new_op.child("requestBody"))
        if old.value is None and new.value is None:
            return
        required = bool((new.value or {}).get("required"))
        if old.value is None:
            kind: Kind = "breaking" if required else "non-breaking"
            self.add(kind, "added", new.pointer, "new " + ("required " * required) + "request body")
        elif new.value is None:
            self.add("breaking", "removed", old.pointer, "request body removed")
        else:
            if bool(old.value.get("required")) != required:
                kind = "breaking" if required else "non-breaking"
                verdict = "required" if required else "optional"
                self.add(kind, "changed", new.pointer, f"request body is now {verdict}")
            self.annotations(old, new, "request body")
            self.content(old.child("content"), new.child("content"), "request", "request body")

    def responses(self, old_op: Node, new_op: Node) -> None:
        old, new = old_op.child("responses"), new_op.child("responses")
        for code in sorted(old.members() - new.members()):
            self.add(
                "breaking", "removed", old.child(code).pointer, f"documented status {code} removed"
            )
        for code in sorted(new.members() - old.members()):
            self.add(
                "non-breaking", "added", new.child(code).pointer, f"new documented status {code}"
            )
        for code in sorted(old.members() & new.members()):
            old_r = self.resolve(self.old, old.child(code))
            new_r = self.resolve(self.new, new.child(code))
            where = f"response {code}"
            self.annotations(old_r, new_r, where)
            self.content(old_r.child("content"), new_r.child("content"), "response", where)
            self.headers(old_r.child("headers"), new_r.child("headers"), where)
            for key in sorted((old_r.members() | new_r.members()) - RESPONSE_KEYS - ANNOTATIONS):
                self.other(old_r, new_r, key, where)

    def content(self, old: Node, new: Node, direction: Direction, where: str) -> None:
        for media in sorted(old.members() - new.members()):
            self.add(
                "breaking",
                "removed",
                old.child(media).pointer,
                f"{where}: content type {media} removed",
            )
        for media in sorted(new.members() - old.members()):
            self.add(
                "non-breaking",
                "added",
                new.child(media).pointer,
                f"{where}: new content type {media}",
            )
        for media in sorted(old.members() & new.members()):
            old_m, new_m = old.child(media), new.child(media)
            label = f"{where} ({media})" if len(new.members()) > 1 else where
            self.annotations(old_m, new_m, label)
            body = f"{label} body" if direction == "response" else label
            self.schema(old_m.child("schema"), new_m.child("schema"), direction, body, "")

    def headers(self, old: Node, new: Node, where: str) -> None:
        for name in sorted(old.members() - new.members()):
            self.add(
                "breaking", "removed", old.child(name).pointer, f"{where}: header `{name}` removed"
            )
        for name in sorted(new.members() - old.members()):
            self.add(
                "non-breaking", "added", new.child(name).pointer, f"{where}: new header `{name}`"
            )
        for name in sorted(old.members() & new.members()):
            old_h = self.resolve(self.old, old.child(name))
            new_h = self.resolve(self.new, new.child(name))
            label = f"{where}: header `{name}`"
            if old_h.value.get("required") and not new_h.value.get("required"):
                self.add("breaking", "changed", new_h.pointer, f"{label} may now be absent")
            self.annotations(old_h, new_h, label)
            self.schema(old_h.child("schema"), new_h.child("schema"), "response", label, "")

    def annotations(
        self,
        old: Node,
        new: Node,
        where: str,
        subject: str = "",
        origins: tuple[dict[str, str], dict[str, str]] = ({}, {}),
    ) -> None:
        """Annotation changes between two objects. In a schema, `subject` names the field,
        and `origins` says where keys inherited from around a union are written."""
        o = old.value if isinstance(old.value, dict) else {}
        n = new.value if isinstance(new.value, dict) else {}
        own = f"`{subject}` " if subject else ""
        for key in sorted(ANNOTATIONS | {k for k in (*o, *n) if k.startswith("x-")}):
            if key in o and key not in n:
                at = f"{origins[0].get(key, old.pointer)}/{escape(key)}"
                self.add("annotation", "removed", at, f"{where}: {own}{key} removed")
            elif key in n and o.get(key) != n[key]:
                verb: Verb = "changed" if key in o else "added"
                at = f"{origins[1].get(key, new.pointer)}/{escape(key)}"
                self.add("annotation", verb, at, f"{where}: {own}{key} {verb}")

    def other(self, old: Node, new: Node, key: str, where: str) -> None:
        """The last rule: a difference in a key that no rule above reads."""
        before, after = old.child(key), new.child(key)
        if before.value == after.value or key.startswith("x-"):
            return  # extensions are compared as annotations
        self.add(
            "breaking",
            "changed",
            after.pointer if after.value is not None else before.pointer,
            f"{where}: `{key}` changed, and no rule classifies it: treated as breaking, review it",
        )

    # -- schemas

    def resolve(self, document: dict[str, Any], node: Node) -> Node:
        """Follow `$ref`s; keys beside a `$ref` (OpenAPI 3.1 allows them) override the target's."""
        seen: set[str] = set()
        while isinstance(node.value, dict) and isinstance(node.value.get("$ref"), str):
            ref = node.value["$ref"]
            if ref in seen or not ref.startswith("#/"):
                break
            seen.add(ref)
            target = Node(document, "").child(
                *(part.replace("~1", "/").replace("~0", "~") for part in ref[2:].split("/"))
            )
            siblings = {k: v for k, v in node.value.items() if k != "$ref"}
            node = Node({**(target.value or {}), **siblings}, target.pointer)
        return node

    def branches(self, document: dict[str, Any], node: Node) -> list[Branch]:
        """The alternatives a schema accepts, each of one JSON type. Keys beside `anyOf`
        (FastAPI puts the title and description there) go into every branch, so that moving
        them in or out of a union is no change."""
        ref = node.value.get("$ref") if isinstance(node.value, dict) else None
        node = self.resolve(document, node)
        schema = node.value
        if schema is None or schema is True or schema == {}:
            return [Branch(ANY, {}, node.pointer)]
        if not isinstance(schema, dict):  # false: nothing fits
            return []
        outer = {k: v for k, v in schema.items() if k not in (*UNIONS, "allOf")}
        if "allOf" in schema:  # what pydantic writes there is one schema, split for reuse
            merged: dict[str, Any] = {}
            for index in range(len(schema["allOf"])):
                merged.update(self.resolve(document, node.child("allOf", index)).value or {})
            return self.branches(document, Node({**merged, **outer}, node.pointer))
        for union in UNIONS:
            if union in schema:
                found = []
                for index in range(len(schema[union])):
                    for branch in self.branches(document, node.child(union, index)):
                        inherited = {k: v for k, v in outer.items() if k not in branch.schema}
                        branch.schema = {**branch.schema, **inherited}
                        branch.origins.update({k: node.pointer for k in inherited})
                        found.append(branch)
                return found
        declared = schema.get("type")
        if declared is None:
            inferred = {_json_type(value) for value in schema.get("enum", [])}
            types = sorted(inferred) or (["object"] if "properties" in schema else [ANY])
        else:
            types = [declared] if isinstance(declared, str) else list(declared)
        found = [Branch(t, schema, node.pointer, ref) for t in types]
        if schema.get("nullable") is True and "null" not in types:  # OpenAPI 3.0
            found.append(Branch("null", {}, node.pointer + "/nullable"))
        return found

    def schema(self, old: Node, new: Node, direction: Direction, where: str, subject: str) -> None:
        """Compare two schemas; `subject` is the field they describe (`[].cost`), or ""."""
        if (old.pointer, new.pointer, direction) in self.compared:  # recursive schemas
            return
        self.compared.add((old.pointer, new.pointer, direction))
        what = f"{where}: `{subject}`" if subject else where
        old_branches = self.branches(self.old, old)
        new_branches = self.branches(self.new, new)
        old_any = any(b.type == ANY for b in old_branches)
        new_any = any(b.type == ANY for b in new_branches)
        if old_any or new_any:
            if new_any and not old_any:
                before = _describe(old_branches)
                self.widened(
                    direction,
                    "changed",
                    new.pointer,
                    f"{what} may now be {ANY} (was {before})",
                )
            elif old_any and not new_any:
                after = _describe(new_branches)
                self.narrowed(
                    direction,
                    "changed",
                    new.pointer,
                    f"{what} is now {after} (was {ANY})",
                )
            return
        pairs, gone, came = _pair(old_branches, new_branches)
        if len(gone) == len(came) == 1 and "null" not in (gone[0].type, came[0].type):
            self.add(
                "breaking",
                "changed",
                came[0].pointer + "/type",
                f"{what} type changed from {gone[0].describe()} to {came[0].describe()}",
            )
            gone, came = [], []
        for branch in gone:
            verb = "no longer accepts" if direction == "request" else "is no longer answered as"
            self.narrowed(
                direction,
                "removed",
                branch.pointer,
                f"{what} {verb} {branch.describe()}",
            )
        for branch in came:
            if direction == "request":
                text = f"now also accepts {branch.describe()}"
            elif branch.type == "null":
                text = "may now be null"
            else:
                text = f"may now be {branch.describe()}"
            self.widened(direction, "added", branch.pointer, f"{what} {text}")
        for old_branch, new_branch in pairs:
            self.branch(old_branch, new_branch, direction, where, subject)

    def branch(
        self, old: Branch, new: Branch, direction: Direction, where: str, subject: str
    ) -> None:
        o, n, at = old.schema, new.schema, new.pointer
        what = f"{where}: `{subject}`" if subject else where
        origins = (old.origins, new.origins)
        self.annotations(Node(o, old.pointer), Node(n, at), where, subject, origins)
        if old.type != new.type:  # an integer became a number, or the other way round
            text = f"{what} type changed from {old.type} to {new.type}"
            if new.type == "number":
                self.widened(direction, "changed", at + "/type", text)
            else:
                self.narrowed(direction, "changed", at + "/type", text)
        self.enum(old, new, direction, what)
        for key in ("format", "pattern", *LOWER_BOUNDS, *UPPER_BOUNDS, "uniqueItems", "multipleOf"):
            self.keyword(key, old, new, direction, what)
        if o.get("default") != n.get("default"):
            self.add(
                "non-breaking",
                _verb(o.get("default"), n.get("default")),
                new.at("default") if "default" in n else old.at("default"),
                f"{what} default changed from {o.get('default')!r} to {n.get('default')!r}",
            )
        if new.family == "array":
            old_items = Node(o, old.pointer).child("items")
            self.schema(old_items, Node(n, at).child("items"), direction, where, f"{subject}[]")
        if new.family == "object":
            self.object(Node(o, old.pointer), Node(n, at), direction, where, subject)
        for key in sorted((set(o) | set(n)) - SCHEMA_KEYWORDS - ANNOTATIONS):
            if o.get(key) != n.get(key) and not key.startswith("x-"):
                self.add(
                    "breaking",
                    "changed",
                    f"{at}/{escape(key)}",
                    f"{what} keyword `{key}` changed, and no rule classifies it: "
                    "treated as breaking, review it",
                )

    def enum(self, old: Branch, new: Branch, direction: Direction, where: str) -> None:
        def values(branch: Branch) -> list[Any] | None:
            if "const" in branch.schema:
                return [branch.schema["const"]]
            return branch.schema.get("enum")

        before, after = values(old), values(new)
        if before is None and after is None:
            return
        if after is None:
            text = f"{where} is no longer limited to {before}"
            self.widened(
                direction, "removed", old.at("const" if "const" in old.schema else "enum"), text
            )
        elif before is None:
            text = f"{where} is now limited to {after}"
            self.narrowed(
                direction, "added", new.at("const" if "const" in new.schema else "enum"), text
            )
        else:
            for index, value in enumerate(before):
                if value not in after:
                    at = f"{old.at('enum')}/{index}"
                    self.narrowed(
                        direction, "removed", at, f"{where}: enum value {value!r} removed"
                    )
            for index, value in enumerate(after):
                if value not in before:
                    at = f"{new.at('enum')}/{index}"
                    self.widened(direction, "added", at, f"{where}: new enum value {value!r}")

    def keyword(self, key: str, old: Branch, new: Branch, direction: Direction, what: str) -> None:
        """A constraint keyword: which way its change moves the set of values that fit."""
        before, after = old.schema.get(key), new.schema.get(key)
        if before == after:
            return
        text = f"{what} {key} changed from {before!r} to {after!r}"
        verb = _verb(before, after)
        at = old.at(key) if after is None else new.at(key)
        if key in LOWER_BOUNDS + UPPER_BOUNDS and before is not None and after is not None:
            looser = (after < before) if key in LOWER_BOUNDS else (after > before)
        elif key == "uniqueItems":
            looser = not after
        elif before is None or after is None:  # a bound, format or pattern added or dropped
            looser = after is None
        else:  # two formats, patterns or multiples: neither is known to hold the other
            self.add("breaking", verb, at, text)
            return
        if looser:
            self.widened(direction, verb, at, text)
        else:
            self.narrowed(direction, verb, at, text)

    def object(self, old: Node, new: Node, direction: Direction, where: str, subject: str) -> None:
        old_fields, new_fields = old.child("properties"), new.child("properties")
        old_required = set(old.value.get("required") or ())
        new_required = set(new.value.get("required") or ())
        for name in dict.fromkeys(old_fields.names() + new_fields.names()):
            label = f"{subject}.{name}" if subject else name
            if name not in new_fields.members():
                self.add(
                    "breaking",
                    "removed",
                    old_fields.child(name).pointer,
                    f"{where}: field `{label}` removed",
                )
            elif name not in old_fields.members():
                required = name in new_required
                kind: Kind = "breaking" if direction == "request" and required else "non-breaking"
                text = f"new {'required ' * required}field `{label}`"
                self.add(kind, "added", new_fields.child(name).pointer, f"{where}: {text}")
            else:
                self.schema(old_fields.child(name), new_fields.child(name), direction, where, label)
                if name in old_required and name not in new_required:
                    absent = ": it may be absent" if direction == "response" else ""
                    text = f"{where}: field `{label}` is no longer required{absent}"
                    self.widened(direction, "changed", new.pointer + "/required", text)
                elif name in new_required and name not in old_required:
                    text = f"{where}: field `{label}` is now required"
                    self.narrowed(direction, "changed", new.pointer + "/required", text)
        extra = f"{subject}.<other keys>" if subject else "<other keys>"
        self.schema(
            old.child("additionalProperties"),
            new.child("additionalProperties"),
            direction,
            where,
            extra,
        )


def _pair(
    old: list[Branch], new: list[Branch]
) -> tuple[list[tuple[Branch, Branch]], list[Branch], list[Branch]]:
    """Match alternatives: the same type and the same format or component first, then the
    same type; what is left was removed (old) or added (new)."""
    pairs: list[tuple[Branch, Branch]] = []
    gone, came = list(old), list(new)
    for exact in (True, False):
        for branch in list(came):
            for candidate in gone:
                if candidate.family != branch.family:
                    continue
                if exact and (candidate.ref, candidate.schema.get("format")) != (
                    branch.ref,
                    branch.schema.get("format"),
                ):
                    continue
                pairs.append((candidate, branch))
                gone.remove(candidate)
                came.remove(branch)
                break
    return pairs, gone, came


def _verb(before: Any, after: Any) -> Verb:
    return "added" if before is None else "removed" if after is None else "changed"


def _describe(branches: list[Branch]) -> str:
    names = [branch.describe() for branch in branches] or ["nothing"]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" or {names[-1]}"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _canonical(requirements: list[dict[str, Any]]) -> list[list[tuple[str, list[str]]]]:
    return sorted(
        sorted((name, sorted(scopes or [])) for name, scopes in requirement.items())
        for requirement in requirements
    )


def _names(requirements: list[dict[str, Any]]) -> str:
    """`A or B+C` for [{A: []}, {B: [], C: []}]; `none` for no requirement."""
    return " or ".join(" + ".join(sorted(r)) or "anonymous" for r in requirements) or "none"


def _serialization(parameter: dict[str, Any]) -> str:
    """How a parameter goes on the wire, with OpenAPI's defaults filled in."""
    where = parameter.get("in")
    style = parameter.get("style") or ("form" if where in ("query", "cookie") else "simple")
    explode = parameter.get("explode", style == "form")
    reserved = ", allowReserved" if parameter.get("allowReserved") else ""
    return f"style={style}, explode={str(bool(explode)).lower()}{reserved}"


def _without(value: Any, keys: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {k: v for k, v in value.items() if k not in keys}
    return value
