"""The model call path through real LiteLLM and real HTTP, against the scripted OpenAI-compatible double."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from bosun.planner import Judgement, ModelSettings, PlanningContext, judge_outcome
from bosun.planner.judge import parse_verdict
from bosun.planner.llm import ModelError, complete
from bosun_tools.identity import Identity

from tests.fakes.llm import FakeLLM, call, error, text, tool_calls

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_llm() -> Iterator[FakeLLM]:
    with FakeLLM() as fake:
        yield fake


def settings(fake: FakeLLM, **overrides: Any) -> ModelSettings:
    base: dict[str, Any] = {"model": "openai/fake-model", "api_base": fake.url, "retry_backoff": 0.01}
    return ModelSettings(**{**base, **overrides})


def context(history: list[str] | None = None) -> PlanningContext:
    return PlanningContext(
        request="scale web in shop to 5",
        namespace="shop",
        target_namespaces=["shop"],
        identity=Identity("alice", ("sre",)),
        history=history or [],
    )


async def test_text_reply_and_usage(fake_llm: FakeLLM) -> None:
    fake_llm.script(text("hello", usage={"prompt_tokens": 11, "completion_tokens": 7}))
    reply = await complete(settings(fake_llm), [{"role": "user", "content": "hi"}])
    assert reply.content == "hello"
    assert reply.tool_calls == []
    assert (reply.usage.calls, reply.usage.prompt_tokens, reply.usage.completion_tokens) == (1, 11, 7)
    assert reply.usage.cost_usd == 0.0  # an unknown model has no price
    assert fake_llm.requests[0]["messages"] == [{"role": "user", "content": "hi"}]


async def test_tool_calls_pass_through(fake_llm: FakeLLM) -> None:
    fake_llm.script(tool_calls(call("k8s_get", {"kind": "deployment", "name": "web"}, id="c1")))
    tools = [{"type": "function", "function": {"name": "k8s_get", "parameters": {"type": "object"}}}]
    reply = await complete(settings(fake_llm), [{"role": "user", "content": "hi"}], tools)
    assert [(c.id, c.name, json.loads(c.arguments)) for c in reply.tool_calls] == [
        ("c1", "k8s_get", {"kind": "deployment", "name": "web"})
    ]
    assert fake_llm.requests[0]["tools"] == tools
    assert reply.as_message()["tool_calls"][0]["function"]["name"] == "k8s_get"


async def test_known_model_is_priced(fake_llm: FakeLLM) -> None:
    fake_llm.script(text("ok", usage={"prompt_tokens": 1000, "completion_tokens": 1000}))
    reply = await complete(settings(fake_llm, model="openai/gpt-4o-mini"), [{"role": "user", "content": "x"}])
    assert reply.usage.cost_usd > 0


async def test_a_model_call_leaves_no_parsed_claude_tokenizer_but_claude_tokens_still_count(
    fake_llm: FakeLLM,
) -> None:
    """``bosun.planner.llm._drop_import_leftovers``: the ~13 MiB parse of LiteLLM's bundled Claude tokenizer
    that ``litellm.utils`` keeps for nothing is gone once LiteLLM is in use, and the Claude token counter,
    which reads the serialised copy (``claude_json_str``), still works."""
    fake_llm.script(text("ok"))
    await complete(settings(fake_llm), [{"role": "user", "content": "x"}])
    import litellm
    import litellm.utils

    assert "json_data" not in vars(litellm.utils)
    claude = next(
        m for m in litellm.anthropic_models if litellm.utils.huggingface_tokenizer_kind(m) == "anthropic"
    )
    assert litellm.utils.select_tokenizer(claude)["type"] == "huggingface_tokenizer"
    assert litellm.token_counter(model=claude, text="hello world") > 0


async def test_transient_errors_are_retried_with_backoff(fake_llm: FakeLLM) -> None:
    fake_llm.script(error(500, "overloaded"), error(429, "slow down", retry_after=0), text("finally"))
    reply = await complete(settings(fake_llm, max_retries=3), [{"role": "user", "content": "x"}])
    assert reply.content == "finally"
    assert len(fake_llm.requests) == 3


async def test_persistent_failure_names_what_to_fix(fake_llm: FakeLLM) -> None:
    fake_llm.script(*[error(500, "provider is down")] * 3)
    with pytest.raises(ModelError) as caught:
        await complete(settings(fake_llm, max_retries=2), [{"role": "user", "content": "x"}])
    message = str(caught.value)
    assert "HTTP 500" in message
    assert "after 3 attempts" in message
    assert "openai/fake-model" in message
    assert len(fake_llm.requests) == 3


async def test_auth_failure_is_not_retried(fake_llm: FakeLLM) -> None:
    fake_llm.script(error(401, "invalid api key"), text("never reached"))
    with pytest.raises(ModelError, match="API key"):
        await complete(settings(fake_llm), [{"role": "user", "content": "x"}])
    assert len(fake_llm.requests) == 1


async def test_slow_model_times_out(fake_llm: FakeLLM) -> None:
    fake_llm.script(text("late", delay=5), text("late again", delay=5))
    started = time.monotonic()
    with pytest.raises(ModelError, match=r"did not answer within 0\.5s after 2 attempts"):
        await complete(settings(fake_llm, timeout=0.5, max_retries=1), [{"role": "user", "content": "x"}])
    assert time.monotonic() - started < 4


async def test_unreachable_model_names_the_endpoint() -> None:
    with FakeLLM() as fake:
        url = fake.url  # the port is free again once the double is closed
    with pytest.raises(ModelError, match="BOSUN_API_BASE"):
        await complete(
            ModelSettings("openai/fake", api_base=url, max_retries=1, retry_backoff=0.01),
            [{"role": "user", "content": "x"}],
        )


async def test_judge_without_model_trusts_objective_facts() -> None:
    verdict = await judge_outcome(context(), "deployment web: 5/5 replicas available", None)
    assert verdict == Judgement(True, "objective checks passed: deployment web: 5/5 replicas available")


async def test_judge_asks_the_model(fake_llm: FakeLLM) -> None:
    fake_llm.script(text('{"satisfied": false, "reason": "only 3 replicas"}'))
    verdict = await judge_outcome(context(["s1 k8s_scale web -> 5: ok"]), "3/5 available", settings(fake_llm))
    assert not verdict.satisfied
    assert verdict.reason == "only 3 replicas"
    assert verdict.usage.calls == 1
    sent = fake_llm.requests[0]["messages"][1]["content"]
    assert "3/5 available" in sent
    assert "s1 k8s_scale web -> 5: ok" in sent


async def test_judge_falls_back_when_model_fails(fake_llm: FakeLLM) -> None:
    fake_llm.script(error(400, "bad request"))
    verdict = await judge_outcome(context(), "5/5 available", settings(fake_llm))
    assert verdict.satisfied
    assert "model judgement unavailable" in verdict.reason


def test_fake_llm_runs_as_a_process(tmp_path: Path) -> None:
    script = tmp_path / "replies.json"
    script.write_text(json.dumps({"replies": [text("scripted")], "default": text("default")}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.llm", "--port", "0", "--script", str(script)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        assert line.startswith("FAKE_LLM_URL=")
        url = line.split("=", 1)[1]
        body = {"model": "fake", "messages": [{"role": "user", "content": "hi"}]}
        first = httpx.post(f"{url}/chat/completions", json=body, timeout=10).json()
        second = httpx.post(f"{url}/chat/completions", json=body, timeout=10).json()
        assert first["choices"][0]["message"]["content"] == "scripted"
        assert second["choices"][0]["message"]["content"] == "default"
        base = url.removesuffix("/v1")
        httpx.post(f"{base}/_script", json=[text("added")], timeout=10)
        third = httpx.post(f"{url}/chat/completions", json=body, timeout=10).json()
        assert third["choices"][0]["message"]["content"] == "added"
        assert len(httpx.get(f"{base}/_requests", timeout=10).json()) == 3
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_fake_llm_match_and_exhaustion() -> None:
    with FakeLLM([text("for restart", match="restart"), text("any")]) as fake:
        body = {"model": "m", "messages": [{"role": "user", "content": "scale web"}]}
        reply = httpx.post(f"{fake.url}/chat/completions", json=body, timeout=10).json()
        assert reply["choices"][0]["message"]["content"] == "any"
        body = {"model": "m", "messages": [{"role": "user", "content": "restart web"}]}
        reply = httpx.post(f"{fake.url}/chat/completions", json=body, timeout=10).json()
        assert reply["choices"][0]["message"]["content"] == "for restart"
        exhausted = httpx.post(f"{fake.url}/chat/completions", json=body, timeout=10)
        assert exhausted.status_code == 400
        assert "script exhausted" in exhausted.json()["error"]["message"]


@pytest.mark.parametrize(
    ("answer", "satisfied", "reason"),
    [
        ('Here you go: {"satisfied": true, "reason": "5/5 ready"}', True, "5/5 ready"),
        ("No, only 3 of 5 replicas are ready.", False, "No, only 3 of 5 replicas are ready."),
        ("Yes. All five replicas are available.", True, "Yes. All five replicas are available."),
    ],
)
def test_judge_reads_json_or_plain_verdicts(answer: str, satisfied: bool, reason: str) -> None:
    assert parse_verdict(answer) == (satisfied, reason)


def test_judge_does_not_guess_from_unclear_text() -> None:
    assert parse_verdict("Nothing indicates a problem") is None
    assert parse_verdict('{"satisfied": "maybe"}') is None


def test_the_model_library_reads_no_env_file_from_the_working_directory(tmp_path: Path) -> None:
    """LiteLLM's default mode loads ``./.env`` into the environment at import; the operator's never does."""
    (tmp_path / ".env").write_text("BOSUN_API_KEY=from-a-stray-file\n")
    script = (
        "import os\n"
        "from bosun.planner.llm import _litellm\n"
        "_litellm()\n"
        "print(os.environ.get('BOSUN_API_KEY', 'unset'))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("BOSUN_API_KEY", "LITELLM_MODE")}
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "unset"
