"""``neurofuse prices``: fill the VM and GPU prices of ``config/gcp_prices.yaml`` from Google.

The Compute Engine prices that ``neurofuse cost`` needs are not shipped with NeuroFuse: they
change, differ by region and account, and we could not read them from a Google page we
could cite. Google publishes them through the Cloud Billing Catalog API
(``GET https://cloudbilling.googleapis.com/v1/services/6F81-5844-456A/skus``, an API key
is enough): one SKU per resource, e.g. the vCPU-hour and the GiB-hour of N2 machines, on
demand or Spot (``category.usageType`` ``OnDemand`` / ``Preemptible``), with the regions
it applies to. A machine shape costs ``vCPUs x core price + GiB x RAM price`` (Google's
resource-based billing of predefined shapes). This module lists the service's SKUs,
picks the ones for the region, and writes a price table in the format of
``config/gcp_prices.yaml`` where every VM and GPU price names its SKU and the date it
was read; storage and egress are copied from the base table. A SKU it cannot find, or
finds twice, is an error that lists what the catalog does hold: nothing is guessed.

The API key is sent only to the catalog; it is never written to the table or printed.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from neurofuse.errors import NeuroFuseError

__all__ = ["CATALOG_URL", "COMPUTE_SERVICE", "MACHINES", "fetch_skus", "price_table_from_skus", "write_price_table"]

CATALOG_URL = "https://cloudbilling.googleapis.com/v1"
#: Service id of Compute Engine in the Cloud Billing Catalog.
COMPUTE_SERVICE = "6F81-5844-456A"
#: vCPUs and memory (GiB) of the shapes the gcp profile uses (neurofuse.resources.GCP_MACHINES
#: and the training VM).
MACHINES: dict[str, tuple[str, int, float]] = {
    "n2-standard-2": ("N2", 2, 8), "n2-highmem-2": ("N2", 2, 16), "n2-highmem-4": ("N2", 4, 32),
    "n2-highmem-8": ("N2", 8, 64), "n2-highmem-16": ("N2", 16, 128), "n2-highmem-32": ("N2", 32, 256),
    "n1-standard-8": ("N1", 8, 30),
}
#: How each priced resource is named in SKU descriptions (Custom, Sole Tenancy, commitments
#: and extended memory are other SKUs and are excluded by these patterns).
_PATTERNS = {
    ("N2", "core"): r"\bN2 Instance Core running in\b",
    ("N2", "ram"): r"\bN2 Instance Ram running in\b",
    ("N1", "core"): r"\bN1 Predefined Instance Core running in\b",
    ("N1", "ram"): r"\bN1 Predefined Instance Ram running in\b",
    ("nvidia-tesla-t4", "gpu"): r"\bNvidia Tesla T4 GPU\b(?!.*Commitment)",
}
_UNITS = {"core": "h", "ram": "GiBy.h", "gpu": "h"}
_USAGE = {"on_demand": "OnDemand", "spot": "Preemptible"}


@dataclass(frozen=True)
class SkuPrice:
    sku_id: str
    description: str
    price: float  # USD per usage unit, first tier


def fetch_skus(api_key: str, *, service: str = COMPUTE_SERVICE, base_url: str = CATALOG_URL,
               timeout: float = 60.0) -> Iterator[Mapping[str, Any]]:
    """Every SKU of ``service`` in USD, following the pages of the catalog."""
    token = ""
    while True:
        query = {"key": api_key, "currencyCode": "USD", "pageSize": 5000}
        if token:
            query["pageToken"] = token
        url = f"{base_url.rstrip('/')}/services/{service}/skus?{urllib.parse.urlencode(query)}"
        shown = f"{base_url.rstrip('/')}/services/{service}/skus"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - https or a test server
                page = json.load(response)
        except urllib.error.HTTPError as err:
            detail = err.read().decode("utf-8", "replace")[:300].replace(api_key, "<key>")
            raise NeuroFuseError(f"the Cloud Billing Catalog answered HTTP {err.code} ({detail.strip()})", shown,
                                 "check the API key (Cloud Console -> APIs & Services -> Credentials) and that the "
                                 "Cloud Billing API is enabled in its project") from None
        except (urllib.error.URLError, TimeoutError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise NeuroFuseError(f"cannot reach the Cloud Billing Catalog ({reason})", shown,
                                 "check the network, or fill in config/gcp_prices.yaml by hand") from None
        except ValueError:
            raise NeuroFuseError("the Cloud Billing Catalog answer is not JSON", shown) from None
        yield from page.get("skus") or []
        token = page.get("nextPageToken") or ""
        if not token:
            return


def _first_tier(sku: Mapping[str, Any], unit: str) -> float:
    expression = (sku.get("pricingInfo") or [{}])[0].get("pricingExpression") or {}
    if expression.get("usageUnit") != unit:
        raise NeuroFuseError(f"SKU {sku.get('skuId')} ({sku.get('description')}) is priced per "
                             f"{expression.get('usageUnit')!r}, expected {unit!r}", CATALOG_URL,
                             "the catalog changed its format: fill in config/gcp_prices.yaml by hand and report it")
    rates = sorted(expression.get("tieredRates") or [], key=lambda r: float(r.get("startUsageAmount") or 0))
    if not rates:
        raise NeuroFuseError(f"SKU {sku.get('skuId')} has no price", CATALOG_URL)
    money = rates[0].get("unitPrice") or {}
    return int(money.get("units") or 0) + int(money.get("nanos") or 0) / 1e9


def _pick(skus: list[Mapping[str, Any]], region: str, family: str, kind: str, pricing: str) -> SkuPrice:
    pattern = re.compile(_PATTERNS[(family, kind)])
    found = [s for s in skus
             if pattern.search(s.get("description", ""))
             and (s.get("category") or {}).get("usageType") == _USAGE[pricing]
             and region in (s.get("serviceRegions") or [])]
    what = f"{family} {kind} ({pricing.replace('_', '-')}) in {region}"
    if len(found) != 1:
        near = sorted({s.get("description", "") for s in skus if family.split("-")[-1].upper() in
                       s.get("description", "").upper() and region in (s.get("serviceRegions") or [])})[:8]
        problem = "no SKU" if not found else f"{len(found)} SKUs ({', '.join(s.get('skuId', '?') for s in found)})"
        raise NeuroFuseError(f"{problem} for {what} in the Compute Engine catalog", CATALOG_URL,
                             f"fill this price in by hand; SKUs there for {region} include: "
                             + ("; ".join(near) if near else "none"))
    sku = found[0]
    return SkuPrice(str(sku.get("skuId")), str(sku.get("description")), _first_tier(sku, _UNITS[kind]))


def price_table_from_skus(skus: Iterable[Mapping[str, Any]], region: str, base: Mapping[str, Any],
                          read: str | None = None) -> dict[str, Any]:
    """A price table (the format of ``config/gcp_prices.yaml``) for ``region``: VM and GPU
    prices from ``skus``, the rest of the region's entries (storage, egress) from ``base``."""
    skus = list(skus)
    read = read or _dt.date.today().isoformat()
    base_region = ((base.get("regions") or {}).get(region)
                   or (base.get("regions") or {}).get(base.get("default_region")) or {})
    table: dict[str, Any] = {k: v for k, v in base_region.items() if k not in ("machine_hour", "gpu_hour")}
    source = f"Cloud Billing Catalog API, {CATALOG_URL}/services/{COMPUTE_SERVICE}/skus"
    machine_hour: dict[str, dict[str, Any]] = {}
    gpu_hour: dict[str, dict[str, Any]] = {}
    for pricing in ("on_demand", "spot"):
        cache: dict[tuple[str, str], SkuPrice] = {}

        def sku(family: str, kind: str) -> SkuPrice:
            if (family, kind) not in cache:
                cache[family, kind] = _pick(skus, region, family, kind, pricing)  # noqa: B023 - used at once
            return cache[family, kind]

        machine_hour[pricing] = {}
        for name, (family, vcpus, gib) in MACHINES.items():
            core, ram = sku(family, "core"), sku(family, "ram")
            machine_hour[pricing][name] = {
                "price": round(vcpus * core.price + gib * ram.price, 6),
                "source": f"{source}: {vcpus} x SKU {core.sku_id} ({core.description}, {core.price:g}/h) + {gib:g} "
                          f"GiB x SKU {ram.sku_id} ({ram.description}, {ram.price:g}/GiB-h)",
                "read": read,
            }
        gpu = _pick(skus, region, "nvidia-tesla-t4", "gpu", pricing)
        gpu_hour[pricing] = {"nvidia-tesla-t4": {"price": round(gpu.price, 6),
                                                 "source": f"{source}: SKU {gpu.sku_id} ({gpu.description})",
                                                 "read": read}}
    return {"currency": "USD", "default_region": region,
            "regions": {region: {"machine_hour": machine_hour, "gpu_hour": gpu_hour, **table}}}


def write_price_table(out: str | Path, table: Mapping[str, Any], region: str) -> None:
    from neurofuse.io import atomic_write_text

    header = (f"# Google Cloud prices for {region}, written by `neurofuse prices` from the Cloud Billing\n"
              "# Catalog API (VM and GPU: first-tier list prices of the SKUs named in each source;\n"
              "# storage and egress: copied from the base table). Use: neurofuse cost --prices THIS_FILE\n")
    atomic_write_text(out, header + yaml.safe_dump(dict(table), sort_keys=False, width=200))
