#!/usr/bin/env python3
"""The workflow page in a real browser (issue 13): Debian's chromium, headless, driven through
chromedriver by selenium, against a running `stepstream process` pipeline on standard input.

It loads the page, finds every state of the W1 workflow in the drawing, sees the counts rise
while events flow, feeds an event that fails a state and sees that state marked failing and
named in the dead-letter table, then writes a screenshot and prints its path. Then, against
`stepstream serve --http-listen`, it finds a state machine of the API drawn with the counts
of the executions it ran.

    python3 tests/page/browser.py --bin target/release/stepstream [--screenshot FILE]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

os.environ.setdefault("SE_OFFLINE", "true")  # selenium must not try to download a driver

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
W1 = os.path.join(ROOT, "configs", "workflows", "w1_transform.asl.json")
EVENT = os.path.join(ROOT, "configs", "events", "iot-event.json")


def state_names(machine):
    """Every state name of a definition, nested machines included."""
    names = []
    for name, st in machine.get("States", {}).items():
        names.append(name)
        for inner in [st.get("ItemProcessor"), st.get("Iterator")] + st.get("Branches", []):
            if inner:
                names.extend(state_names(inner))
    return names


def wait_for(what, check, timeout=30.0):
    """Polls `check` until it returns something truthy; fails naming `what`."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as e:  # the page may be between refreshes
            last = e
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


class Pipeline:
    """`stepstream process W1 --http-listen 127.0.0.1:0`, fed through its standard input."""

    def __init__(self, binary):
        self.proc = subprocess.Popen(
            [binary, "process", W1, "--http-listen", "127.0.0.1:0", "--shards", "2"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.address = None
        for line in self.proc.stderr:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("event") == "http_listening":
                self.address = entry["address"]
                break
        if not self.address:
            raise AssertionError("stepstream never logged http_listening")
        # Keep draining both outputs so the process never blocks on a full pipe.
        self.outputs = 0
        self.dead = []
        threading.Thread(target=self._read_stdout, daemon=True).start()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        with open(EVENT) as f:
            self.event = json.load(f)
        self.sent = 0

    def _read_stdout(self):
        for _ in self.proc.stdout:
            self.outputs += 1

    def _read_stderr(self):
        for line in self.proc.stderr:
            try:
                self.dead.append(json.loads(line))
            except ValueError:
                pass

    def send(self, n):
        lines = []
        for _ in range(n):
            ev = dict(self.event)
            ev["eventId"] = f"evt-{self.sent:06d}"
            self.sent += 1
            lines.append(json.dumps(ev))
        self.proc.stdin.write(("\n".join(lines) + "\n").encode())
        self.proc.stdin.flush()

    def send_raw(self, text):
        self.proc.stdin.write(text.encode() + b"\n")
        self.proc.stdin.flush()

    def close(self):
        self.proc.stdin.close()
        code = self.proc.wait(timeout=30)
        assert code == 0, f"stepstream process exited {code}"


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,1400"]:
        opts.add_argument(a)
    service = Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    return webdriver.Chrome(service=service, options=opts)


def entered(driver, name):
    """The entered count the page shows for state `name` (from its data attribute, which
    the page's script writes next to the visible text)."""
    for g in driver.find_elements(By.CSS_SELECTOR, "g.state"):
        if g.get_attribute("data-state") == name:
            v = g.get_attribute("data-entered")
            return int(v) if v is not None else None
    raise AssertionError(f"no state {name} on the page")


def api_call(address, action, body):
    """One AWS JSON 1.0 request to `stepstream serve` (unsigned: it listens on loopback)."""
    import urllib.request
    req = urllib.request.Request(
        f"http://{address}/", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/x-amz-json-1.0",
                 "X-Amz-Target": f"AWSStepFunctions.{action}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def check_api_machines(binary, driver):
    """`serve --http-listen`: a state machine of the API drawn, its counts shown."""
    proc = subprocess.Popen([binary, "serve", "--listen", "127.0.0.1:0", "--shards", "1",
                             "--http-listen", "127.0.0.1:0"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        ops = api = None
        for line in proc.stderr:
            entry = json.loads(line)
            if entry.get("event") == "http_listening":
                ops = entry["address"]
            if entry.get("event") == "api_listening":
                api = entry["address"].removeprefix("http://")
                break
        assert ops and api, "serve did not log both addresses"
        threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
        with open(W1) as f:
            definition = f.read()
        arn = api_call(api, "CreateStateMachine", {
            "name": "w1-api", "definition": definition, "type": "EXPRESS",
            "roleArn": "arn:aws:iam::123456789012:role/page"})["stateMachineArn"]
        with open(EVENT) as f:
            event = f.read()
        for _ in range(7):
            r = api_call(api, "StartSyncExecution", {"stateMachineArn": arn, "input": event})
            assert r["status"] == "SUCCEEDED", r
        driver.get(f"http://{ops}/")
        section = wait_for("the state machine's section", lambda: driver.find_element(
            By.CSS_SELECTOR, 'section.machine[data-machine="w1-api"]'))
        drawn = {g.get_attribute("data-state") for g in
                 section.find_elements(By.CSS_SELECTOR, "g.state")}
        with open(W1) as f:
            names = state_names(json.load(f))
        assert drawn == set(names), (drawn, names)
        start = json.loads(definition)["StartAt"]
        count = wait_for("the machine's counts", lambda: [
            g.get_attribute("data-entered") for g in section.find_elements(By.CSS_SELECTOR, "g.state")
            if g.get_attribute("data-state") == start][0] == "7" and "7")
        print(f"ok   the API's state machine is drawn with its executions' counts ({start}: {count})")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--screenshot", default=None)
    args = ap.parse_args()
    with open(W1) as f:
        names = state_names(json.load(f))
    start = json.load(open(W1))["StartAt"]

    pipe = Pipeline(os.path.abspath(args.bin))
    driver = browser()
    try:
        driver.get(f"http://{pipe.address}/")
        section = wait_for("the pipeline's section",
                           lambda: driver.find_element(By.CSS_SELECTOR,
                                                       'section.pipeline[data-pipeline="w1_transform"]'))
        # Every state of W1 is drawn, with its name as visible text in its box.
        drawn = {}
        for g in section.find_elements(By.CSS_SELECTOR, "g.state"):
            drawn[g.get_attribute("data-state")] = g
        missing = [n for n in names if n not in drawn]
        assert not missing, f"states not in the drawing: {missing}"
        for n in names:
            label = drawn[n].find_element(By.CSS_SELECTOR, "text.name").text
            assert label == n, (n, label)
            assert drawn[n].is_displayed(), n
        print(f"ok   every state of W1 is drawn: {', '.join(names)}")

        # Counts rise while events flow.
        pipe.send(200)
        first = wait_for("200 entries at the start state",
                         lambda: (entered(driver, start) or 0) >= 200 and entered(driver, start))
        pipe.send(300)
        second = wait_for("the count to rise past 500",
                          lambda: (entered(driver, start) or 0) >= 500 and entered(driver, start))
        assert second > first, (first, second)
        text = wait_for("the visible count", lambda: drawn[start].find_element(
            By.CSS_SELECTOR, "text.counts").text)
        assert text.startswith(str(second)), text
        assert not driver.find_elements(By.CSS_SELECTOR, "g.state.failing"), "nothing failed yet"
        print(f"ok   counts rose while events flowed: {first} then {second} at {start} ({text!r})")

        # An event without the fields Enrich reads fails Enrich: marked, and in the table.
        pipe.send_raw(json.dumps({"eventId": "bad-1", "deviceId": "d-1"}))
        failing = wait_for("a failing state", lambda: driver.find_elements(
            By.CSS_SELECTOR, "g.state.failing"))
        marked = [g.get_attribute("data-state") for g in failing]
        assert marked == ["Enrich"], marked
        assert "failed" in drawn["Enrich"].find_element(By.CSS_SELECTOR, "text.counts").text
        rows = wait_for("a dead-letter row", lambda: section.find_elements(
            By.CSS_SELECTOR, "table.dead tbody tr"))
        cells = [td.text for td in rows[0].find_elements(By.TAG_NAME, "td")]
        assert cells[1] == "Enrich" and cells[2] == "States.Runtime", cells
        assert cells[4] == f"stdin/0/{pipe.sent}", cells
        totals = section.find_element(By.CSS_SELECTOR, ".totals").text
        assert totals.startswith(f"{pipe.sent} succeeded") and "1 failed" in totals, totals
        print(f"ok   the failing state is marked ({marked[0]}) and the dead letter names it: {cells[:3]}")

        shot = args.screenshot or os.path.join(tempfile.gettempdir(),
                                               f"stepstream-page-{os.getpid()}.png")
        driver.save_screenshot(shot)
        assert os.path.getsize(shot) > 10_000, "the screenshot is nearly empty"
        print(f"screenshot: {shot}")
        check_api_machines(os.path.abspath(args.bin), driver)
    finally:
        driver.quit()
    pipe.close()
    assert pipe.outputs == pipe.sent, (pipe.outputs, pipe.sent)
    print("4 passed, 0 failed")


if __name__ == "__main__":
    sys.exit(main())
