"""providers.json ``endpoints``: replicas of one self-hosted model, validated once, each its own candidate."""

from __future__ import annotations

import pytest

from bkvy.core.config.gateway import ConfigError, build_config
from bkvy.core.config.replicas import replica_key_id, split_replica_key_id
from bkvy.core.routing.route_table import RouteTable

URLS = ["http://10.0.0.1:8000", "http://10.0.0.2:8000/", "http://10.0.0.3:8000/v1"]


def _config(model_extra: dict | None = None, provider_extra: dict | None = None):
    model = {"intelligence_tier": "low", "cost_per_1k_tokens": 0.0, "endpoints": URLS, **(model_extra or {})}
    provider = {"type": "openai_compatible", "models": {"llama": model}, **(provider_extra or {})}
    return build_config({"vllm": provider}, {}, {})


def test_each_replica_is_a_candidate_of_its_own_with_its_base_url() -> None:
    config = _config()
    provider = config.providers["vllm"]
    assert provider.key_ids_for("llama") == ("default@0", "default@1", "default@2")
    assert [provider.target("llama", k)[1] for k in provider.key_ids_for("llama")] == [  # type: ignore[index]
        "http://10.0.0.1:8000",
        "http://10.0.0.2:8000",
        "http://10.0.0.3:8000/v1",
    ]
    table = RouteTable.compile(config)
    assert [e.key.key_id for e in table.models[("vllm", "llama")]] == ["default@0", "default@1", "default@2"]


def test_base_url_may_be_left_out_when_every_model_lists_its_replicas() -> None:
    assert _config().providers["vllm"].base_url == "http://10.0.0.1:8000"


def test_a_replica_id_maps_back_to_its_key_and_nothing_else_does() -> None:
    provider = _config(provider_extra={"keys": {"k1": {"api_key": "a"}, "k2": {"api_key": "b"}}}).providers["vllm"]
    assert provider.key_ids_for("llama")[:2] == ("k1@0", "k2@0")
    key, url = provider.target("llama", "k2@1")  # type: ignore[misc]
    assert key.api_key == "b" and url == "http://10.0.0.2:8000"
    assert provider.target("llama", "k2") is None  # a replicated model has no un-replicated candidate
    assert provider.target("llama", "k2@3") is None
    assert provider.target("llama", "k9@0") is None
    assert split_replica_key_id(replica_key_id("default", 12)) == ("default", 12)
    assert split_replica_key_id("plain") == ("plain", None)


def test_a_model_without_endpoints_keeps_its_keys_and_the_provider_url() -> None:
    config = build_config(
        {
            "oai": {
                "type": "openai",
                "keys": {"k": {"api_key": "x"}},
                "models": {"gpt": {"intelligence_tier": "low", "cost_per_1k_tokens": 1}},
            }
        },
        {},
        {},
    )
    provider = config.providers["oai"]
    assert provider.key_ids_for("gpt") == ("k",)
    assert provider.target("gpt", "k")[1] == "https://api.openai.com"  # type: ignore[index]
    assert provider.target("gpt", "k@0") is None


@pytest.mark.parametrize(
    "model_extra, fragment",
    [
        ({"endpoints": []}, "vllm.models.llama.endpoints"),
        ({"endpoints": ["ftp://x"]}, "endpoints[0] must be an http(s) URL"),
        ({"endpoints": ["http://a:1", "http://a:1/"]}, "endpoints[1] repeats"),
        ({"balancing": "random"}, "vllm.models.llama.balancing"),
        ({"affinity_epsilon": 0}, "vllm.models.llama.affinity_epsilon"),
        ({"replica_metrics": {"interval_seconds": 0}}, "vllm.models.llama.replica_metrics.interval_seconds"),
        ({"replica_metrics": {"max_cache_usage": 1.5}}, "replica_metrics.max_cache_usage"),
    ],
)
def test_bad_replica_config_names_the_file_and_the_path(model_extra: dict, fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        _config(model_extra)
    assert "providers.json" in str(raised.value) and fragment in str(raised.value)


def test_endpoints_are_refused_on_a_hosted_provider_type() -> None:
    model = {"intelligence_tier": "low", "cost_per_1k_tokens": 1, "endpoints": ["http://a:1"]}
    with pytest.raises(ConfigError) as raised:
        build_config({"oai": {"type": "openai", "keys": {"k": {"api_key": "x"}}, "models": {"gpt": model}}}, {}, {})
    message = str(raised.value)
    assert "models.gpt.endpoints" in message and "openai_compatible" in message


def test_a_replicas_circuits_are_renewed_and_kept_with_its_key() -> None:
    from bkvy.core.config.fingerprint import key_fingerprints

    fingerprints = key_fingerprints(_config(provider_extra={"keys": {"k1": {"api_key": "a"}}}))
    assert set(fingerprints) == {("vllm", "k1"), ("vllm", "k1@0"), ("vllm", "k1@1"), ("vllm", "k1@2")}
    assert len(set(fingerprints.values())) == 1  # the key's value, once per replica


@pytest.mark.parametrize("knob", [{"balancing": "round_robin"}, {"affinity_epsilon": 0.5}, {"replica_metrics": {}}])
def test_replica_knobs_without_replicas_are_refused(knob: dict) -> None:
    model = {"intelligence_tier": "low", "cost_per_1k_tokens": 0.0, **knob}
    with pytest.raises(ConfigError, match=r"vllm.models.llama: .* list them in \"endpoints\", or drop it"):
        build_config(
            {"vllm": {"type": "openai_compatible", "base_url": "http://h:1", "models": {"llama": model}}}, {}, {}
        )


def test_the_configured_key_id_pins_every_replica_of_its_key() -> None:
    from bkvy.core.routing.plan import RouteRequest
    from bkvy.models.errors import UnknownKey
    from bkvy.models.types import RoutingMethod

    table = RouteTable.compile(_config())
    pinned = RouteRequest(RoutingMethod.DIRECT, provider="vllm", model="llama", key_id="default")
    assert [e.key.key_id for e in table.groups_for(pinned)[0]] == ["default@0", "default@1", "default@2"]
    with pytest.raises(UnknownKey):
        table.groups_for(pinned._replace(key_id="other"))
