"""Client construction: a rotated token file is picked up on the next request, an unchanged one is not re-read."""

from __future__ import annotations

import os

import kubernetes.client
import pytest

from services.shared.kube import client


def auth_header(api_client: kubernetes.client.ApiClient) -> str:
    return str(api_client.configuration.get_api_key_with_prefix("authorization"))


def test_token_file_is_re_read_when_it_changes(tmp_path):
    token = tmp_path / "token"
    token.write_text("first-token\n")
    api_client = client.from_token_file(server="https://127.0.0.1:6443", ca_file=tmp_path / "ca.crt", token_file=token)
    assert auth_header(api_client) == "Bearer first-token"
    replacement = tmp_path / "token.new"
    replacement.write_text("second-token")
    os.replace(replacement, token)  # how kubelet rotates projected tokens: a new file, renamed into place
    assert auth_header(api_client) == "Bearer second-token"


def test_settings_reach_the_client(tmp_path):
    token = tmp_path / "token"
    token.write_text("t")
    settings = client.ClientSettings(pool_maxsize=7, user_agent="prepull-test")
    api_client = client.from_token_file(server="https://h", ca_file="ca", token_file=token, settings=settings)
    assert api_client.configuration.connection_pool_maxsize == 7
    assert api_client.user_agent == "prepull-test"
    assert api_client.configuration.host == "https://h"


def test_an_empty_token_file_is_refused(tmp_path):
    token = tmp_path / "token"
    token.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        client.from_token_file(server="https://h", ca_file="ca", token_file=token)
