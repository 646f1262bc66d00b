"""The official `openai` SDK, sync and async, against a real gateway and worker (tiny preset).

What a new user meets with only base_url changed: any API key works when the policy does not
require auth (and none but a tenant's does when it does); n, penalties, logit_bias,
min_tokens, echo with prompt logprobs, lists of prompts; a 400 naming every field that would
change the output and is not served; /v1/models listing exactly what `model` may say.

The tiny model's weights are random but seeded, and its logits lie within about [-0.6, 1.2],
its last token's the highest (tied embeddings): greedy output repeats it, a penalty of 2
stops that, and a logit_bias of a few units decides greedy picks. Byte-level tokens: "a" is
id 97, end-of-sequence 257.
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.support.processes import Proc, start_gateway

pytestmark = pytest.mark.integration

A, EOS = "97", "257"
DEMO_KEY = "sk-demo-local"  # policies/default.yaml's demo tenant
ROOT = Path(__file__).resolve().parents[2]
GREEDY = {"temperature": 0, "extra_body": {"ignore_eos": True}}


@pytest.fixture(scope="module")
def base(gateway: str) -> str:
    return f"{gateway}/v1"


@pytest.fixture(scope="module")
def client(base: str) -> Iterator[openai.OpenAI]:
    # Any key: the default policy does not require auth, and every SDK must send some key.
    with openai.OpenAI(base_url=base, api_key="sk-anything-at-all", max_retries=0, timeout=60) as c:
        yield c


def _async_client(base: str, api_key: str = "sk-another-unknown-key") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base, api_key=api_key, max_retries=0, timeout=60)


# -- keys ------------------------------------------------------------------------------------

def test_any_key_is_served_as_anonymous_when_auth_is_not_required(client: openai.OpenAI, gateway: str) -> None:
    before = _unknown_keys(gateway)
    out = client.completions.create(model="tiny", prompt="Hi", max_tokens=2)
    assert out.usage.completion_tokens == 2
    assert _unknown_keys(gateway) == before + 1, "counted in laneway_unknown_api_keys_total"
    demo = openai.OpenAI(base_url=client.base_url, api_key=DEMO_KEY, max_retries=0)
    demo.completions.create(model="tiny", prompt="Hi", max_tokens=2)  # a tenant's key is its tenant's
    assert _unknown_keys(gateway) == before + 1


def test_async_any_key_works(base: str) -> None:
    async def main() -> None:
        async with _async_client(base) as c:
            out = await c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}],
                                                  max_tokens=3)
            assert out.choices[0].message.role == "assistant" and out.usage.completion_tokens <= 3

    asyncio.run(main())


@pytest.fixture(scope="module")
def strict_base(proc_dir: Path, worker: Proc) -> Iterator[str]:
    policy = proc_dir / "auth-required.yaml"
    policy.write_text((ROOT / "policies" / "default.yaml").read_text().replace("auth:\n  required: false",
                                                                        "auth:\n  required: true"))
    assert "required: true" in policy.read_text()
    g = start_gateway(proc_dir, [worker], "--policy", str(policy), name="strict-gateway")
    yield f"http://127.0.0.1:{g.port}/v1"
    g.stop()


def test_with_auth_required_unknown_keys_get_401(strict_base: str) -> None:
    with openai.OpenAI(base_url=strict_base, api_key="sk-not-a-tenant", max_retries=0) as c:
        with pytest.raises(openai.AuthenticationError) as info:
            c.completions.create(model="tiny", prompt="Hi", max_tokens=2)
    assert info.value.status_code == 401 and info.value.code == "invalid_api_key"
    with openai.OpenAI(base_url=strict_base, api_key=DEMO_KEY, max_retries=0) as c:
        assert c.completions.create(model="tiny", prompt="Hi", max_tokens=2).usage.completion_tokens == 2

    async def main() -> None:
        async with _async_client(strict_base) as c:
            with pytest.raises(openai.AuthenticationError):
                await c.completions.create(model="tiny", prompt="Hi", max_tokens=2)

    asyncio.run(main())


# -- models ----------------------------------------------------------------------------------

def test_models_list_exactly_what_the_url_accepts(client: openai.OpenAI, base: str) -> None:
    ids = [m.id for m in client.models.list()]
    assert ids == ["tiny", "chat", "laneway"], "the served model, the default endpoint, laneway"
    for name in ids:
        assert client.models.retrieve(name).id == name
        assert client.completions.create(model=name, prompt="x", max_tokens=1).model == "tiny"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("support-draft")  # another endpoint: not a model of this URL
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="support-draft", prompt="x", max_tokens=1)

    async def main() -> None:
        async with _async_client(f"{base}/endpoints/support-draft") as c:
            listed = [m.id async for m in c.models.list()]
            assert listed == ["tiny", "laneway", "support-draft"]
            assert (await c.models.retrieve("support-draft")).id == "support-draft"
            out = await c.completions.create(model="support-draft", prompt="x", max_tokens=1)
            assert out.usage.completion_tokens == 1
            with pytest.raises(openai.NotFoundError):
                await c.models.retrieve("chat")

    asyncio.run(main())


# -- n ---------------------------------------------------------------------------------------

def test_n_choices(client: openai.OpenAI) -> None:
    out = client.completions.create(model="tiny", prompt="Once upon", max_tokens=6, n=3, seed=11, temperature=1.0,
                                    extra_body={"ignore_eos": True})
    assert [c.index for c in out.choices] == [0, 1, 2]
    assert len({c.text for c in out.choices}) > 1, "seed + index per sample: not three copies"
    assert out.usage.completion_tokens == 18 and out.usage.prompt_tokens == len("Once upon") + 1
    again = client.completions.create(model="tiny", prompt="Once upon", max_tokens=6, n=3, seed=11, temperature=1.0,
                                      extra_body={"ignore_eos": True})
    assert [c.text for c in again.choices] == [c.text for c in out.choices], "seeded: repeatable"
    chat = client.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}], n=2,
                                          max_tokens=4, **GREEDY)
    assert [c.index for c in chat.choices] == [0, 1]
    assert chat.choices[0].message.content == chat.choices[1].message.content, "greedy samples agree"


def test_async_streamed_n_choices(base: str) -> None:
    async def main() -> None:
        async with _async_client(base) as c:
            stream = await c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "Hi"}],
                                                     n=3, max_tokens=5, stream=True,
                                                     stream_options={"include_usage": True}, **GREEDY)
            texts: dict[int, str] = {}
            roles: dict[int, str] = {}
            finished: dict[int, str] = {}
            usage = None
            async for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage
                for choice in chunk.choices:
                    texts[choice.index] = texts.get(choice.index, "") + (choice.delta.content or "")
                    if choice.delta.role:
                        roles[choice.index] = choice.delta.role
                    if choice.finish_reason:
                        finished[choice.index] = choice.finish_reason
            assert sorted(texts) == [0, 1, 2] and roles == {0: "assistant", 1: "assistant", 2: "assistant"}
            assert finished == {0: "length", 1: "length", 2: "length"}
            assert len(set(texts.values())) == 1, "greedy samples agree"
            assert usage is not None and usage.completion_tokens == 15

    asyncio.run(main())


# -- logit_bias and penalties ------------------------------------------------------------------

def test_logit_bias_decides_greedy_picks(client: openai.OpenAI) -> None:
    out = client.completions.create(model="tiny", prompt="Z", max_tokens=6, logit_bias={A: 100}, **GREEDY)
    assert out.choices[0].text == "aaaaaa"
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="tiny", prompt="Z", max_tokens=2, logit_bias={"999": 1})
    assert info.value.code == "token_id_out_of_vocabulary"


@pytest.mark.parametrize(("penalty", "num_z"), [
    ({"presence_penalty": 2.0}, 1),  # once "Z" is in the output it loses its edge (2 > the logits' spread)
    ({"frequency_penalty": 2.0}, 1),
    ({"extra_body": {"repetition_penalty": 10.0}}, 0),  # counts the prompt too: "Z" never comes
])
def test_penalties_stop_the_repetition(client: openai.OpenAI, penalty: dict, num_z: int) -> None:
    # Tied embeddings make the tiny model repeat its last token: greedy from "Z" is all "Z".
    plain = client.completions.create(model="tiny", prompt="Z", max_tokens=8, **GREEDY)
    assert plain.choices[0].text == "ZZZZZZZZ"
    fields = {k: v for k, v in penalty.items() if k != "extra_body"}
    extra = {"ignore_eos": True, **penalty.get("extra_body", {})}
    out = client.completions.create(model="tiny", prompt="Z", max_tokens=8, temperature=0, extra_body=extra,
                                    **fields)
    assert out.choices[0].text.count("Z") == num_z, out.choices[0].text
    assert out.usage.completion_tokens == 8


def test_async_min_tokens_holds_back_the_end(base: str) -> None:
    async def main() -> None:
        async with _async_client(base) as c:
            early = await c.completions.create(model="tiny", prompt="Z", max_tokens=8, logit_bias={EOS: 100},
                                               temperature=0)
            assert (early.choices[0].text, early.choices[0].finish_reason) == ("", "stop")
            assert early.usage.completion_tokens == 1
            held = await c.completions.create(model="tiny", prompt="Z", max_tokens=8, logit_bias={EOS: 100},
                                              temperature=0, extra_body={"min_tokens": 4})
            assert held.choices[0].finish_reason == "stop" and held.usage.completion_tokens == 5
            assert len(held.choices[0].text) > 0

    asyncio.run(main())


# -- completions: echo, prompt logprobs, lists of prompts --------------------------------------

def test_echo_with_prompt_logprobs(client: openai.OpenAI) -> None:
    out = client.completions.create(model="tiny", prompt="Hello", max_tokens=3, echo=True, logprobs=2, **GREEDY)
    choice = out.choices[0]
    assert choice.text.startswith("Hello") and len(choice.text) > len("Hello")
    lp = choice.logprobs
    # BOS, then the prompt's five bytes, then three generated tokens.
    assert lp.tokens[1:6] == list("Hello") and len(lp.tokens) == 1 + 5 + 3
    assert lp.token_logprobs[0] is None and lp.top_logprobs[0] is None
    assert all(v < 0 for v in lp.token_logprobs[1:])
    assert all(1 <= len(top) <= 2 for top in lp.top_logprobs[1:])
    assert lp.text_offset[1:6] == [0, 1, 2, 3, 4]
    plain = client.completions.create(model="tiny", prompt="Hello", max_tokens=3, logprobs=2, **GREEDY)
    assert choice.text == "Hello" + plain.choices[0].text
    assert lp.token_logprobs[6:] == pytest.approx(plain.choices[0].logprobs.token_logprobs, abs=1e-4)


def test_async_streamed_echo(base: str) -> None:
    async def main() -> None:
        async with _async_client(base) as c:
            stream = await c.completions.create(model="tiny", prompt="Hey", max_tokens=4, echo=True, stream=True,
                                                **GREEDY)
            chunks = [chunk async for chunk in stream]
            assert chunks[0].choices[0].text.startswith("Hey")
            full = "".join(ch.choices[0].text for ch in chunks if ch.choices)
            single = await c.completions.create(model="tiny", prompt="Hey", max_tokens=4, echo=True, **GREEDY)
            assert full == single.choices[0].text

    asyncio.run(main())


def test_a_list_of_prompts_gets_one_choice_per_prompt(client: openai.OpenAI) -> None:
    out = client.completions.create(model="tiny", prompt=["Red", "Green and"], max_tokens=3, n=2, **GREEDY)
    assert [c.index for c in out.choices] == [0, 1, 2, 3]
    alone = [client.completions.create(model="tiny", prompt=p, max_tokens=3, **GREEDY).choices[0].text
             for p in ("Red", "Green and")]
    assert [c.text for c in out.choices] == [alone[0], alone[0], alone[1], alone[1]]
    assert out.usage.prompt_tokens == (3 + 1) + (9 + 1) and out.usage.completion_tokens == 12
    tokens = client.completions.create(model="tiny", prompt=[[256, 82, 101, 100], [256, 71]], max_tokens=3, **GREEDY)
    assert tokens.choices[0].text == alone[0] and len(tokens.choices) == 2


def test_async_list_of_prompts(base: str) -> None:
    async def main() -> None:
        async with _async_client(base) as c:
            out = await c.completions.create(model="tiny", prompt=["a", "b", "c"], max_tokens=2, **GREEDY)
            assert [ch.index for ch in out.choices] == [0, 1, 2]
            assert out.usage.completion_tokens == 6

    asyncio.run(main())


# -- no silent ignoring ----------------------------------------------------------------------

@pytest.mark.parametrize(("kwargs", "param"), [
    ({"suffix": " the end"}, "suffix"),
    ({"best_of": 3}, "best_of"),
    ({"extra_body": {"frobnicate": True}}, "frobnicate"),
    ({"extra_body": {"modalities": ["audio"]}}, "modalities"),
])
def test_fields_not_served_are_refused_by_name(client: openai.OpenAI, kwargs: dict, param: str) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model="tiny", prompt="x", max_tokens=2, **kwargs)
    assert info.value.status_code == 400 and info.value.param == param, info.value.message


def test_best_of_equal_to_n_is_served(client: openai.OpenAI) -> None:
    out = client.completions.create(model="tiny", prompt="x", max_tokens=2, best_of=2, n=2, **GREEDY)
    assert len(out.choices) == 2


def test_async_unsupported_chat_fields(base: str) -> None:
    async def main() -> None:
        async with _async_client(base) as c:
            with pytest.raises(openai.BadRequestError) as info:
                await c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}],
                                                max_tokens=2, reasoning_effort="high")
            assert info.value.param == "reasoning_effort"
            out = await c.chat.completions.create(model="tiny", messages=[{"role": "user", "content": "x"}],
                                                  max_tokens=2, presence_penalty=1.0, frequency_penalty=0.5,
                                                  logit_bias={A: 1}, user="u-1", metadata={"k": "v"})
            assert out.usage.completion_tokens <= 2

    asyncio.run(main())


def _unknown_keys(gateway: str) -> float:
    text = httpx.get(f"{gateway}/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith("laneway_unknown_api_keys_total "):
            return float(line.split()[1])
    return 0.0


def test_the_readme_sdk_example_runs_as_written(gateway: str, capsys: pytest.CaptureFixture[str]) -> None:
    readme = (ROOT / "README.md").read_text()
    start = readme.index("```python\nfrom openai import OpenAI")
    code = readme[start + len("```python\n"): readme.index("```", start + 3)]
    exec(compile(code.replace("http://localhost:8000", gateway), "README.md", "exec"), {})
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "['tiny', 'chat', 'laneway']"
    assert [index for index, _ in ast.literal_eval(printed[1])] == [0, 1, 2, 3]
