#!/usr/bin/env python3
"""Drives the dashboard of a running `depin serve` in headless Chromium.

Run by crates/depin-cli/tests/dashboard_browser.rs against a coordinator with
agents that have been paid; usable by hand too:

    python3 tools/browser/dashboard_check.py --url http://127.0.0.1:8080 \
        --operator HEX --out target/screenshots

Checks: each page loads with no console error, uncaught exception or failed
request; the operator page's balance and earnings (total and per device) are
the API's figures, in the same exact token format as `depin operator status`;
a missing temperature sensor shows as "no sensor"; keyboard navigation
reaches the operator key form and opens the page; the claim form shows the
API's claim; every page carries the Content-Security-Policy. Writes a
full-page screenshot of each page under --out. Exit status 0 when all hold;
otherwise each failure is printed on its own line and the status is 1.

Uses the distribution's Chromium (Playwright's own browser download is not
needed): --chromium, default /usr/bin/chromium.
"""

import argparse
import json
import sys
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

TIMEOUT_MS = 20_000


def api(base, path):
    with urllib.request.urlopen(base + path, timeout=20) as r:
        return json.loads(r.read())


def tokens(base_units):
    """The dashboard's token format: depin_core::format_tokens with thousands separators."""
    n = int(base_units)
    sign = "-" if n < 0 else ""
    n = abs(n)
    return f"{sign}{n // 1_000_000:,}.{n % 1_000_000:06d}"


class Check:
    def __init__(self):
        self.failures = []

    def that(self, ok, what):
        print(("ok   " if ok else "FAIL ") + what, flush=True)
        if not ok:
            self.failures.append(what)

    def equal(self, got, want, what):
        self.that(got == want, f"{what}: shown {got!r}, API {want!r}")


def watch(page, problems):
    """Records console errors, uncaught exceptions and failed requests of a page."""
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"exception: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
    page.on(
        "response",
        lambda r: r.status >= 400 and problems.append(f"HTTP {r.status}: {r.url}"),
    )


class Seen:
    """The API answers a page received, by path and query: what it showed must
    be exactly these (fetching again could race an epoch closing meanwhile)."""

    def __init__(self, page, base):
        self.responses = {}
        page.on("response", lambda r: r.url.startswith(base + "/v1/") and self.responses.__setitem__(r.url[len(base):], r))

    def json(self, path):
        r = self.responses.get(path)
        if r is None:
            raise AssertionError(f"the page never fetched {path}; it fetched {sorted(self.responses)}")
        return r.json()


def loaded(page):
    """Waits until the page has rendered (the loading line replaced by a heading)."""
    page.wait_for_selector("main h1", timeout=TIMEOUT_MS)
    page.wait_for_load_state("networkidle", timeout=TIMEOUT_MS)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--operator", required=True, help="operator public key, hex")
    ap.add_argument("--out", required=True, help="directory for the screenshots")
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    a = ap.parse_args()
    base = a.url.rstrip("/")
    op = a.operator.lower()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    check = Check()

    economics = api(base, f"/v1/operators/{op}/economics")
    check.that(len(economics["devices"]) > 0, "the operator has devices")
    earned = sum(int(d["earned"]["base_units"]) for d in economics["devices"])
    check.that(earned > 0, "the operator has been paid (the test waits for it)")

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=a.chromium, args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        problems = []
        watch(page, problems)
        seen = Seen(page, base)

        # ---- home
        r = page.goto(base + "/")
        csp = r.headers.get("content-security-policy", "")
        check.that("default-src 'self'" in csp, f"/ carries a strict CSP ({csp!r})")
        loaded(page)
        check.equal(page.title(), "depin dashboard", "home page title")
        page.screenshot(path=str(out / "home.png"), full_page=True)

        # ---- keyboard: Tab from the top of the page reaches the key form
        page.goto(base + "/")
        loaded(page)
        reached = False
        for _ in range(12):
            page.keyboard.press("Tab")
            if page.evaluate("document.activeElement && document.activeElement.id") == "operator-key":
                reached = True
                break
        check.that(reached, "Tab reaches the operator key field")
        if reached:
            label = page.evaluate(
                "document.querySelector('label[for=operator-key]').textContent"
            )
            check.that(bool(label.strip()), "the key field has a label")
            page.keyboard.type(op)
            page.keyboard.press("Enter")
            page.wait_for_url(f"**/operator/{op}", timeout=TIMEOUT_MS)
            page.wait_for_selector("#earned-total", timeout=TIMEOUT_MS)
            check.that(True, "Enter in the key field opens the operator page")

        # ---- operator (by path), figures against the API
        page.goto(f"{base}/operator/{op}")
        loaded(page)
        page.wait_for_selector("#earned-total", timeout=TIMEOUT_MS)
        check.that(op[:8] in page.title(), f"operator page title names the key ({page.title()!r})")
        # What this load received; the API fetched before the browser started
        # agrees on the total (the agents have stopped and their last epoch closed).
        economics = seen.json(f"/v1/operators/{op}/economics")
        balance = seen.json(f"/v1/balances/{op}")
        devices = {d["device"]: d for d in seen.json(f"/v1/operators/{op}/devices")}
        seen_earned = sum(int(d["earned"]["base_units"]) for d in economics["devices"])
        check.equal(seen_earned, earned, "earnings are settled (the page's answer and the one before it agree)")
        shown = page.get_attribute("#earned-total", "data-base-units")
        check.equal(shown, str(seen_earned), "earned, all time (base units)")
        check.equal(page.inner_text("#earned-total"), tokens(seen_earned), "earned, all time (text)")
        check.equal(page.inner_text("#balance"), tokens(balance["balance"]), "balance")
        for d in economics["devices"]:
            sel = f'article[data-device="{d["device"]}"]'
            text = page.inner_text(f"{sel} .earned")
            check.that(
                text.startswith(tokens(d["earned"]["base_units"]) + " tokens"),
                f"device {d['device'][:8]} earned: shown {text!r}, API {tokens(d['earned']['base_units'])}",
            )
            t = devices[d["device"]]["telemetry"]
            if t is not None and t["temperature_c"] is None:
                check.equal(page.inner_text(f"{sel} .temperature"), "no sensor", f"device {d['device'][:8]} temperature")
        # The per-epoch table: every line the API lists, its amount as shown.
        rewards = seen.json(f"/v1/operators/{op}/rewards?epochs=48")
        want_rows = sum(max(1, len(e["devices"])) for e in rewards["epochs"])
        got_rows = page.locator("#earnings-table tbody tr").count()
        check.equal(got_rows, want_rows, "rows in the per-epoch earnings table")
        paid = sum(1 for e in rewards["epochs"] if int(e["earned"]) > 0)
        check.that(paid > 0, "the window has paid epochs (the test waits for them)")
        bars = page.locator("#earnings svg.chart rect.bar").count()
        check.that(bars >= paid, f"the earnings chart has a bar for each of the {paid} paid epochs ({bars} bars)")
        check.that(page.locator("#settings-command").inner_text().startswith("depin operator settings set"),
                   "the settings panel shows the command that changes them")
        page.screenshot(path=str(out / "operator.png"), full_page=True)

        # The hash form of the address shows the same page.
        page.goto(f"{base}/#/operator/{op}")
        loaded(page)
        page.wait_for_selector("#earned-total", timeout=TIMEOUT_MS)
        hash_earned = sum(int(d["earned"]["base_units"]) for d in seen.json(f"/v1/operators/{op}/economics")["devices"])
        check.equal(page.get_attribute("#earned-total", "data-base-units"), str(hash_earned), "earned via /#/operator/…")

        # A key that is not one is explained, not an error.
        page.goto(f"{base}/operator/not-a-key")
        loaded(page)
        check.that("not a public key" in page.inner_text("main"), "a malformed key is explained")

        # ---- network
        page.goto(base + "/network")
        loaded(page)
        check.equal(page.title(), "Network · depin", "network page title")
        # Epochs keep closing (3 s each) while the browser works: compare with
        # the answers this page load received.
        epochs = seen.json("/v1/epochs")
        check.equal(page.inner_text("#last-epoch"), str(seen.json("/v1/network")["last_closed_epoch"]), "last closed epoch")
        check.equal(page.locator("#epochs-table tbody tr").count(), min(len(epochs), 48), "rows in the epochs table (the newest 48)")
        newest = page.locator("#epochs-table tbody tr").first.locator("td")
        check.equal(newest.nth(0).inner_text(), str(epochs[-1]["epoch"]), "newest epoch row")
        check.equal(newest.nth(4).inner_text(), tokens(epochs[-1]["minted"]), "newest epoch minted")
        check.equal(newest.nth(7).inner_text(), epochs[-1]["claim_root"], "newest epoch claim root")
        minted = sum(int(e["minted"]) for e in epochs)
        check.equal(page.inner_text("#minted-total"), tokens(minted), "minted, all epochs")
        last = epochs[-1]["epoch"]
        claim = api(base, f"/v1/claims/{last}/{op}")
        page.fill("#claim-account", op)
        page.click("#claim-form button[type=submit]")
        page.wait_for_selector("#claim-amount", timeout=TIMEOUT_MS)
        check.that(
            page.inner_text("#claim-amount").startswith(tokens(claim["amount"])),
            f"claim as of epoch {last}: shown {page.inner_text('#claim-amount')!r}, API {claim['amount']}",
        )
        check.equal(page.locator("ol.proof li").count(), len(claim["proof"]), "proof hashes shown")
        page.screenshot(path=str(out / "network.png"), full_page=True)

        check.that(not problems, "no console error, exception or failed request" + (": " + "; ".join(problems) if problems else ""))
        browser.close()

    print(f"screenshots in {out}")
    if check.failures:
        print(f"{len(check.failures)} check(s) failed", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
