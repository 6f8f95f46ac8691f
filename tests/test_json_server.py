"""The fakes' HTTP plumbing: a request whose sender died halfway is not a request (it is neither counted nor paid)."""

from __future__ import annotations

import socket
import time

import httpx


def test_half_sent_request_is_not_recorded(fault_server):
    server = fault_server()
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as conn:  # a worker killed mid-send
        conn.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 200\r\n\r\n")  # killed before its body went out
    reply = httpx.post(f"{server.url}/v1/completions", json={"prompt": "Input: whole request"})
    time.sleep(0.1)  # the first connection's handler thread has seen the end of its stream
    assert reply.status_code == 200
    assert server.requests == [{"prompt": "Input: whole request"}]
