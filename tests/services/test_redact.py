from anime_pipeline.services import redact_url


def test_credentials_never_reach_logs_or_manifests():
    assert redact_url("https://ana:s3cret@gpu-box:8188/api") == "https://gpu-box:8188/api"
    assert redact_url("http://127.0.0.1:8188") == "http://127.0.0.1:8188"
    assert "s3cret" not in redact_url("http://:s3cret@host")
