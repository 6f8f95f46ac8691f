"""A Hub-compatible HTTP server for tests: enough of the Hugging Face Hub's API for the real `huggingface_hub` and
`datasets` clients to create repos, upload (regular and LFS files, one NDJSON commit at a time), list, and download.

It lets the suite run every push and load path through the real client code (commit payloads, LFS uploads, cards,
repo types, tokens) without network and without a Hugging Face account. Point the clients at it with `HF_ENDPOINT`
and `HF_HUB_DISABLE_XET=1` (see `conftest.py`).

What it does: tokens (`Authorization: Bearer ...`, each mapped to a user and a `read`/`write` role; a wrong token
gets the Hub's 401 "Invalid credentials in Authorization header", a read token or another user's namespace a 403);
private repos hidden (404) from others; `POST /api/repos/create` (409 with a `url` if it exists);
repo and revision info; `tree` listings (404 for a missing folder) and `paths-info`; `preupload` (LFS for
`.parquet`, `.safetensors`, `.arrow`, `.bin` and files over 10 MB, as the Hub's default `.gitattributes` does);
the LFS batch API with a basic single-PUT transfer and verify; NDJSON commits (files, LFS files, deletions) checked
against the uploaded blobs; `resolve` downloads by branch or commit hash, with `HEAD`, `Range` and the Hub's
`X-Repo-Commit`/`ETag`/`X-Linked-*` headers; `validate-yaml` (the front matter must parse to a mapping). Everything
it is sent is kept in memory (`files`, `lfs_paths`, `requests`) for tests to inspect; `refuse_commits` makes it
refuse chosen commits (422), to test a push broken off halfway.

What it does not do: Xet storage (clients must set `HF_HUB_DISABLE_XET=1`), branches other than `main`, tags, pull
requests, multipart LFS uploads, pagination, organizations, gated repos, repo deletion or renaming, Spaces, rate
limits, the dataset viewer, conversion to Parquet (`refs/convert/parquet`), and any persistence: state lives as long
as the server object.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import PurePosixPath
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

LFS_SUFFIXES = (".parquet", ".safetensors", ".arrow", ".bin")
LFS_THRESHOLD = 10 * 1024 * 1024
PREFIXES = {"models": "", "datasets": "datasets/", "spaces": "spaces/"}
_API = re.compile(r"^/api/(models|datasets|spaces)/([^/]+/[^/]+?)(?:/(tree|paths-info|preupload|commit|revision)"
                  r"/([^/]+)(?:/(.*))?)?$")
_RESOLVE = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)/resolve/([^/]+)/(.+)$")
_LFS_BATCH = re.compile(r"^/(?:(datasets|spaces)/)?([^/]+/[^/]+)\.git/info/lfs/objects/batch$")


def git_oid(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    owner: str
    private: bool
    head: str = ""
    files: dict[str, bytes] = field(default_factory=dict)  # the `main` branch
    lfs: set[str] = field(default_factory=set)
    snapshots: dict[str, tuple[dict[str, bytes], set[str]]] = field(default_factory=dict)  # commit -> files, lfs
    log: list[dict[str, str]] = field(default_factory=list)

    def commit(self, title: str) -> str:
        self.head = hashlib.sha1(f"{len(self.log)}:{title}:{time.time_ns()}".encode()).hexdigest()
        self.snapshots[self.head] = (dict(self.files), set(self.lfs))
        self.log.append({"id": self.head, "title": title, "date": "2026-01-01T00:00:00.000Z"})
        return self.head


class HubError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class HubServer:
    """The server and its state; `start()` serves on 127.0.0.1 in a thread, `stop()` shuts it down."""

    def __init__(self, tokens: dict[str, tuple[str, str]], port: int = 0):
        self.tokens = dict(tokens)  # token -> (user name, "read" | "write")
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, bytes] = {}  # LFS objects by sha256
        self.lfs_paths: list[tuple[str, str, str]] = []  # (repo type, repo id, path) committed as LFS files
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, user)
        self.unhandled: list[str] = []
        self.refuse_commits: str | None = None  # commits whose summary contains this get a 422 (failure injection)
        self._tickets: dict[str, tuple[str, int]] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread: threading.Thread | None = None

    def start(self) -> HubServer:
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def files(self, repo_type: str, repo_id: str) -> dict[str, bytes]:
        """The files on `main` of a repo (`repo_type` is `"model"` or `"dataset"`)."""
        return dict(self.repos[(repo_type + "s", repo_id)].files)

    # ------------------------------------------------------------------ auth and lookup

    def _user(self, headers: Any) -> tuple[str, str] | None:
        auth = headers.get("Authorization") or ""
        if not auth:
            return None
        token = auth.removeprefix("Bearer ").strip()
        if token not in self.tokens:
            raise HubError(401, "Invalid credentials in Authorization header")
        return self.tokens[token]

    def _readable(self, kind: str, repo_id: str, user: tuple[str, str] | None) -> Repo:
        repo = self.repos.get((kind, repo_id))
        if repo is None or (repo.private and (user is None or user[0] != repo.owner)):
            raise HubError(404, "Repository not found", "RepoNotFound")
        return repo

    def _writable(self, kind: str, repo_id: str, user: tuple[str, str] | None, *, create: bool = False) -> Repo | None:
        if user is None:
            raise HubError(401, "You must be authenticated to write")
        namespace = repo_id.split("/")[0]
        if user[1] != "write" or user[0] != namespace:
            raise HubError(403, f"You don't have the rights to write to {repo_id} (token role {user[1]!r})")
        return None if create else self._readable(kind, repo_id, user)

    @staticmethod
    def _snapshot(repo: Repo, revision: str) -> tuple[str, dict[str, bytes], set[str]]:
        revision = unquote(revision)
        if revision == "main":
            return repo.head, repo.files, repo.lfs
        if revision in repo.snapshots:
            return (revision, *repo.snapshots[revision])
        raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")

    # ------------------------------------------------------------------ routes

    def route(self, method: str, path: str, query: dict[str, list[str]], headers: Any, body: bytes) -> tuple:
        """(status, headers, body bytes or JSON-able value) for one request."""
        user = self._user(headers)
        self.requests.append((method, path, user[0] if user else None))
        if method == "POST" and path == "/api/repos/create":
            return self._create(json.loads(body), user)
        if method == "POST" and path == "/api/validate-yaml":
            return self._validate_yaml(json.loads(body))
        if method == "GET" and path == "/api/whoami-v2":
            if user is None:
                raise HubError(401, "Invalid credentials in Authorization header")
            return 200, {}, {"name": user[0], "type": "user", "orgs": [], "auth": {"accessToken": {"role": user[1]}}}
        if method == "PUT" and path.startswith("/lfs-upload/"):
            return self._lfs_put(path.rsplit("/", 1)[1], body)
        if method == "POST" and path.startswith("/lfs-verify/"):
            if path.rsplit("/", 1)[1] not in self.blobs:
                raise HubError(404, "object not uploaded")
            return 200, {}, {"success": True}
        if match := _LFS_BATCH.match(path):
            return self._lfs_batch((match[1] or "models"), match[2], json.loads(body), user)
        if (match := _RESOLVE.match(path)) and method in ("GET", "HEAD"):
            return self._resolve(match[1] or "models", match[2], match[3], unquote(match[4]), headers, user)
        if match := _API.match(path):
            kind, repo_id, action, revision, rest = match.groups()
            rest = unquote(rest or "").strip("/")
            if action is None or action == "revision":
                return self._info(kind, repo_id, revision or "main", user)
            if action == "tree":
                return self._tree(kind, repo_id, revision, rest, query, user)
            if action == "paths-info":
                return self._paths_info(kind, repo_id, revision, parse_qs(body.decode()), user)
            if action == "preupload":
                return self._preupload(kind, repo_id, json.loads(body), user)
            if action == "commit":
                return self._commit(kind, repo_id, revision, body, user)
        if path != "/api/agent-harnesses":  # huggingface_hub's optional agent registry: a 404 is fine
            self.unhandled.append(f"{method} {path}")
        raise HubError(404, f"no route for {method} {path}")

    def _create(self, payload: dict, user: tuple[str, str] | None) -> tuple:
        kind = (payload.get("type") or "model") + "s"
        repo_id = f"{payload.get('organization') or (user[0] if user else '')}/{payload['name']}"
        self._writable(kind, repo_id, user, create=True)
        url = f"{self.url}/{PREFIXES[kind]}{repo_id}"
        with self._lock:
            if (kind, repo_id) in self.repos:
                return 409, {}, {"error": "You already created this repo", "url": url}
            private = payload.get("visibility", "private" if payload.get("private") else "public") != "public"
            repo = self.repos[(kind, repo_id)] = Repo(owner=user[0], private=private)
            repo.commit("initial commit")
        return 200, {}, {"url": url, "name": repo_id, "id": repo_id}

    @staticmethod
    def _validate_yaml(payload: dict) -> tuple:
        text = payload.get("content", "")
        if text.startswith("---"):
            try:
                meta = yaml.safe_load(text.split("---", 2)[1])
            except yaml.YAMLError as exc:
                return 400, {}, {"errors": [{"message": f"YAML does not parse: {exc}"}]}
            if meta is not None and not isinstance(meta, dict):
                return 400, {}, {"errors": [{"message": "metadata must be a mapping"}]}
        return 200, {}, {"warnings": []}

    def _info(self, kind: str, repo_id: str, revision: str, user: tuple[str, str] | None) -> tuple:
        repo = self._readable(kind, repo_id, user)
        sha, files, _ = self._snapshot(repo, revision)
        return 200, {}, {"id": repo_id, "_id": repo_id, "author": repo.owner, "private": repo.private, "sha": sha,
                         "siblings": [{"rfilename": p} for p in sorted(files)], "tags": [], "downloads": 0,
                         "likes": 0, "disabled": False, "gated": False, "lastModified": "2026-01-01T00:00:00.000Z"}

    def _entry(self, repo: Repo, files: dict[str, bytes], lfs: set[str], path: str, expand: bool) -> dict:
        if path in files:
            data = files[path]
            entry: dict[str, Any] = {"type": "file", "oid": git_oid(data), "size": len(data), "path": path}
            if path in lfs:
                entry["lfs"] = {"oid": hashlib.sha256(data).hexdigest(), "size": len(data), "pointerSize": 134}
        else:
            entry = {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "size": 0, "path": path}
        if expand:
            entry["lastCommit"] = repo.log[-1]
        return entry

    @staticmethod
    def _folders(files: dict[str, bytes]) -> set[str]:
        return {str(parent) for p in files for parent in PurePosixPath(p).parents if str(parent) != "."}

    def _tree(self, kind: str, repo_id: str, revision: str, folder: str, query: dict, user) -> tuple:
        repo = self._readable(kind, repo_id, user)
        _, files, lfs = self._snapshot(repo, revision)
        folders = self._folders(files)
        if folder and folder not in folders:
            raise HubError(404, f"{folder} does not exist on main", "EntryNotFound")
        recursive = (query.get("recursive") or ["False"])[0].lower() == "true"
        expand = (query.get("expand") or ["False"])[0].lower() == "true"
        prefix = f"{folder}/" if folder else ""
        paths = sorted(p for p in set(files) | folders if p.startswith(prefix)
                       and (recursive or "/" not in p[len(prefix):]))
        return 200, {}, [self._entry(repo, files, lfs, p, expand) for p in paths]

    def _paths_info(self, kind: str, repo_id: str, revision: str, form: dict, user) -> tuple:
        repo = self._readable(kind, repo_id, user)
        _, files, lfs = self._snapshot(repo, revision)
        known = set(files) | self._folders(files)
        expand = (form.get("expand") or ["False"])[0].lower() == "true"
        wanted = [p.strip("/") for p in form.get("paths", [])]
        return 200, {}, [self._entry(repo, files, lfs, p, expand) for p in wanted if p in known]

    def _preupload(self, kind: str, repo_id: str, payload: dict, user) -> tuple:
        repo = self._writable(kind, repo_id, user)
        answer = []
        for item in payload["files"]:
            path = item["path"]
            lfs = path.endswith(LFS_SUFFIXES) or item["size"] > LFS_THRESHOLD
            entry = {"path": path, "uploadMode": "lfs" if lfs else "regular", "shouldIgnore": False}
            if path in repo.files:  # lets the client skip unchanged files, as the Hub does
                data = repo.files[path]
                entry["oid"] = hashlib.sha256(data).hexdigest() if path in repo.lfs else git_oid(data)
            answer.append(entry)
        return 200, {}, {"files": answer, "commitOid": repo.head}

    def _lfs_batch(self, kind: str, repo_id: str, payload: dict, user) -> tuple:
        self._writable(kind, repo_id, user)
        objects = []
        for obj in payload["objects"]:
            oid, size = obj["oid"], obj["size"]
            if oid in self.blobs:
                objects.append({"oid": oid, "size": size})
                continue
            ticket = secrets.token_hex(8)  # stands for a presigned URL: the PUT carries no token
            self._tickets[ticket] = (oid, size)
            objects.append({"oid": oid, "size": size, "authenticated": True, "actions": {
                "upload": {"href": f"{self.url}/lfs-upload/{ticket}"},
                "verify": {"href": f"{self.url}/lfs-verify/{oid}", "header": {}},
            }})
        return 200, {}, {"transfer": "basic", "objects": objects}

    def _lfs_put(self, ticket: str, body: bytes) -> tuple:
        if ticket not in self._tickets:
            raise HubError(403, "unknown or used upload URL")
        oid, size = self._tickets.pop(ticket)
        if hashlib.sha256(body).hexdigest() != oid or len(body) != size:
            raise HubError(400, "uploaded content does not match the announced oid and size")
        self.blobs[oid] = body
        return 200, {}, b""

    def _commit(self, kind: str, repo_id: str, revision: str, body: bytes, user) -> tuple:
        repo = self._writable(kind, repo_id, user)
        if unquote(revision) != "main":
            raise HubError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "the first line of a commit must be its header")
        if self.refuse_commits and self.refuse_commits in (lines[0]["value"].get("summary") or ""):
            raise HubError(422, "commit refused by the test")
        with self._lock:
            files, lfs = dict(repo.files), set(repo.lfs)
            for line in lines[1:]:
                key, value = line["key"], line["value"]
                path = value["path"].strip("/")
                if key == "file":
                    files[path] = base64.b64decode(value["content"])
                    lfs.discard(path)
                elif key == "lfsFile":
                    if value["oid"] not in self.blobs:
                        raise HubError(422, f"LFS object {value['oid']} of {path} was never uploaded")
                    files[path] = self.blobs[value["oid"]]
                    lfs.add(path)
                    self.lfs_paths.append((kind[:-1], repo_id, path))
                elif key in ("deletedFile", "deletedFolder"):
                    gone = [p for p in files if p == path or (key == "deletedFolder" and p.startswith(path + "/"))]
                    for p in gone:
                        files.pop(p)
                        lfs.discard(p)
                else:
                    raise HubError(400, f"unsupported commit operation {key!r}")
            repo.files, repo.lfs = files, lfs
            sha = repo.commit(lines[0]["value"].get("summary") or "commit")
        url = f"{self.url}/{PREFIXES[kind]}{repo_id}/commit/{sha}"
        return 200, {}, {"commitUrl": url, "commitOid": sha, "success": True, "pullRequestUrl": None}

    def _resolve(self, kind: str, repo_id: str, revision: str, path: str, headers: Any, user) -> tuple:
        repo = self._readable(kind, repo_id, user)
        sha, files, lfs = self._snapshot(repo, revision)
        if path not in files:
            raise HubError(404, f"Entry not found: {path}", "EntryNotFound")
        data = files[path]
        out = {"X-Repo-Commit": sha, "ETag": f'"{git_oid(data)}"', "Accept-Ranges": "bytes"}
        if path in lfs:
            out.update({"X-Linked-Etag": f'"{hashlib.sha256(data).hexdigest()}"', "X-Linked-Size": str(len(data))})
        ranged = re.match(r"bytes=(\d+)-(\d*)$", headers.get("Range") or "")
        if ranged:
            start = int(ranged[1])
            end = int(ranged[2]) if ranged[2] else len(data) - 1
            if start >= len(data):
                return 416, {"Content-Range": f"bytes */{len(data)}"}, b""
            end = min(end, len(data) - 1)
            out["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return 206, out, data[start:end + 1]
        return 200, out, data

    # ------------------------------------------------------------------ HTTP plumbing

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while True:
                        size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                        if size == 0:
                            self.rfile.readline()
                            return b"".join(chunks)
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                body = self._body()
                try:
                    status, headers, payload = server.route(self.command, parts.path, parse_qs(parts.query),
                                                            self.headers, body)
                except HubError as exc:
                    status, payload = exc.status, {"error": exc.message}
                    headers = {"X-Error-Message": exc.message, **({"X-Error-Code": exc.code} if exc.code else {})}
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if not isinstance(payload, bytes):
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _serve

        return Handler
