"""``neurofuse prices`` against a local stand-in for the Cloud Billing Catalog API (127.0.0.1):
SKUs picked by resource, usage type and region; machine prices = vCPUs x core + GiB x RAM;
sources name the SKUs; the API key never reaches the table or a message. The SKU prices
below are made up for the test."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import pytest
import yaml

from neurofuse.cli import main
from neurofuse.cost import estimate_cost, load_prices
from neurofuse.prices import COMPUTE_SERVICE

KEY = "AIzaTEST-not-a-real-key-123"


def sku(sku_id, description, usage, regions, nanos, unit="h", units="0"):
    return {"skuId": sku_id, "description": description,
            "category": {"resourceFamily": "Compute", "usageType": usage},
            "serviceRegions": regions,
            "pricingInfo": [{"pricingExpression": {"usageUnit": unit, "tieredRates": [
                {"startUsageAmount": 0, "unitPrice": {"currencyCode": "USD", "units": units, "nanos": nanos}}]}}]}


US = ["us-central1", "us-east1"]
CATALOG = [
    sku("A-1", "N2 Instance Core running in Americas", "OnDemand", US, 31_000_000),
    sku("A-2", "N2 Instance Ram running in Americas", "OnDemand", US, 4_000_000, unit="GiBy.h"),
    sku("A-3", "Spot Preemptible N2 Instance Core running in Americas", "Preemptible", US, 8_000_000),
    sku("A-4", "Spot Preemptible N2 Instance Ram running in Americas", "Preemptible", US, 1_000_000, unit="GiBy.h"),
    sku("A-5", "N2 Custom Instance Core running in Americas", "OnDemand", US, 33_000_000),
    sku("A-6", "Commitment v1: N2 Cpu in Americas for 1 Year", "Commit1Yr", US, 20_000_000),
    sku("E-1", "N2 Instance Core running in Netherlands", "OnDemand", ["europe-west4"], 34_000_000),
]
PAGE_2 = [
    sku("B-1", "N1 Predefined Instance Core running in Americas", "OnDemand", US, 31_600_000),
    sku("B-2", "N1 Predefined Instance Ram running in Americas", "OnDemand", US, 4_200_000, unit="GiBy.h"),
    sku("B-3", "Spot Preemptible N1 Predefined Instance Core running in Americas", "Preemptible", US, 7_000_000),
    sku("B-4", "Spot Preemptible N1 Predefined Instance Ram running in Americas", "Preemptible", US, 900_000,
        unit="GiBy.h"),
    sku("G-1", "Nvidia Tesla T4 GPU running in Americas", "OnDemand", US, 350_000_000),
    sku("G-2", "Nvidia Tesla T4 GPU attached to Spot Preemptible VMs running in Americas", "Preemptible", US,
        90_000_000),
    sku("G-3", "Commitment v1: Nvidia Tesla T4 GPU running in Americas for 1 Year", "Commit1Yr", US, 200_000_000),
]


@pytest.fixture
def catalog(monkeypatch):
    """The catalog on 127.0.0.1, two pages; 403 for any other key."""
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            url = urlparse(self.path)
            query = parse_qs(url.query)
            seen.append(url.path)
            if query.get("key") != [KEY]:
                body, code = {"error": {"code": 403, "message": f"API key not valid: {query.get('key')}"}}, 403
            elif url.path != f"/v1/services/{COMPUTE_SERVICE}/skus":
                body, code = {"error": {"message": "not found"}}, 404
            elif query.get("pageToken") == ["p2"]:
                body, code = {"skus": PAGE_2, "nextPageToken": ""}, 200
            else:
                body, code = {"skus": CATALOG, "nextPageToken": "p2"}, 200
            data = json.dumps(body).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("NEUROFUSE_BILLING_CATALOG_URL", f"http://127.0.0.1:{server.server_port}/v1")
    monkeypatch.delenv("NEUROFUSE_BILLING_API_KEY", raising=False)
    yield seen
    server.shutdown()
    server.server_close()


def test_prices_from_the_catalog(catalog, tmp_path, capsys):
    out = tmp_path / "prices.yaml"
    assert main(["prices", "--api-key", KEY, "--region", "us-central1", "--out", str(out)]) == 0
    assert len(catalog) == 2  # both pages read
    text = out.read_text()
    assert KEY not in text and KEY not in capsys.readouterr().out
    table = yaml.safe_load(text)["regions"]["us-central1"]
    m = table["machine_hour"]
    assert m["on_demand"]["n2-standard-2"]["price"] == pytest.approx(2 * 0.031 + 8 * 0.004)
    assert m["on_demand"]["n2-highmem-32"]["price"] == pytest.approx(32 * 0.031 + 256 * 0.004)
    assert m["spot"]["n2-highmem-2"]["price"] == pytest.approx(2 * 0.008 + 16 * 0.001)
    assert m["on_demand"]["n1-standard-8"]["price"] == pytest.approx(8 * 0.0316 + 30 * 0.0042)
    assert m["spot"]["n1-standard-8"]["price"] == pytest.approx(8 * 0.007 + 30 * 0.0009)
    assert table["gpu_hour"]["on_demand"]["nvidia-tesla-t4"]["price"] == pytest.approx(0.35)
    assert table["gpu_hour"]["spot"]["nvidia-tesla-t4"]["price"] == pytest.approx(0.09)
    # custom, commitment and other-region SKUs were not taken; sources name the SKUs and the date
    source = m["on_demand"]["n2-standard-2"]["source"]
    assert "SKU A-1 (N2 Instance Core running in Americas" in source and "SKU A-2" in source
    assert m["on_demand"]["n2-standard-2"]["read"]
    # storage and egress come from the shipped table, sources kept
    assert table["storage_gb_month"]["standard"]["price"] == 0.020
    # the table drives an estimate: every VM-hour priced
    estimate = estimate_cost(subjects=10, prices=load_prices(out, "us-central1"), spot=True)
    keys = {line.price_key for line in estimate.lines}
    assert estimate.total > 0 and "regions.us-central1.gpu_hour.spot.nvidia-tesla-t4" in keys
    assert any(k.startswith("regions.us-central1.machine_hour.spot.n2-") for k in keys)
    assert not any(".on_demand." in k for k in keys)


def test_missing_or_doubled_sku_is_named_not_guessed(catalog, tmp_path, capsys):
    out = tmp_path / "prices.yaml"
    assert main(["prices", "--api-key", KEY, "--region", "europe-west4", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "no SKU for N2 ram (on-demand) in europe-west4 in the Compute Engine catalog" in err
    assert "N2 Instance Core running in Netherlands" in err  # what the catalog does hold there
    assert not out.exists()
    CATALOG.append(sku("A-9", "N2 Instance Core running in Americas", "OnDemand", ["us-central1"], 1))
    try:
        assert main(["prices", "--api-key", KEY, "--out", str(out)]) == 2
        assert "2 SKUs (A-1, A-9) for N2 core (on-demand) in us-central1" in capsys.readouterr().err
    finally:
        CATALOG.pop()


def test_bad_key_and_no_key(catalog, tmp_path, capsys):
    out = tmp_path / "prices.yaml"
    assert main(["prices", "--api-key", "wrong-key-456", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "the Cloud Billing Catalog answered HTTP 403" in err and "check the API key" in err
    assert "wrong-key-456" not in err  # the key is masked in the server's message
    assert main(["prices", "--out", str(out)]) == 2
    assert "needs an API key" in capsys.readouterr().err
    assert not out.exists()
