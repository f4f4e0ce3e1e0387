#!/usr/bin/env python3
"""The real AWS clients against `stepstream serve`: boto3 and the AWS CLI, unchanged, pointed
at a server on port 0. Covers every action stepstream answers, success and error paths, the
client settings a user needs (no `sync-` host prefix), SigV4 verification when the server has
credentials, Step Functions Local mocks by `#TestCase`, and a restart with --state-dir.

    python3 tests/api/clients.py --bin target/release/stepstream [--only NAME]

Needs boto3 and awscli (pip); prints one line per test and `N passed, M failed`."""

import argparse
import datetime
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import boto3
import botocore
import botocore.auth
from botocore.config import Config

ROLE = "arn:aws:iam::123456789012:role/stepstream"
PASS = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass", "End": True}}})
W1 = None  # the bench's transform workflow, read in main()


class Server:
    """A running `stepstream serve`; its address is read from its first log line."""

    def __init__(self, binary, *extra, env=None, listen="127.0.0.1:0"):
        self.proc = subprocess.Popen(
            [binary, "serve", "--listen", listen, "--shards", "1", *extra],
            stderr=subprocess.PIPE, text=True, env=env)
        self.log = []
        deadline = time.time() + 20
        self.url = None
        while time.time() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(r'"address":"(http://[^"]+)"', line)
            if m:
                self.url = m.group(1).replace("0.0.0.0", "127.0.0.1")
                break
        if self.url is None:
            self.stop()
            raise RuntimeError("serve did not log its address: " + "".join(self.log))
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stderr:
            self.log.append(line)

    def client(self, key="AKIDEXAMPLE", secret="secret", **config):
        config.setdefault("inject_host_prefix", False)
        config.setdefault("retries", {"max_attempts": 1})
        return boto3.client(
            "stepfunctions", endpoint_url=self.url, region_name="us-east-1",
            aws_access_key_id=key, aws_secret_access_key=secret, config=Config(**config))

    def stop(self, kill=False):
        """SIGTERM (or a kill, as a crash); a clean stop must end within a few seconds even
        with clients' idle keep-alive connections open and executions still running."""
        if self.proc.poll() is None:
            self.proc.kill() if kill else self.proc.terminate()
            started = time.time()
            self.proc.wait(timeout=20)
            if not kill:
                assert self.proc.returncode == 0, self.proc.returncode
                assert time.time() - started < 5, f"the stop took {time.time() - started:.1f} s"


def error_code(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except botocore.exceptions.ClientError as e:
        return e.response["Error"]["Code"], e.response["Error"]["Message"]
    raise AssertionError("no error raised")


def create(sfn, name, definition=PASS, kind="EXPRESS", **extra):
    return sfn.create_state_machine(
        name=name, definition=definition, roleArn=ROLE, type=kind, **extra)["stateMachineArn"]


TESTS = []


def test(fn):
    TESTS.append(fn)
    return fn


@test
def boto3_state_machine_lifecycle(binary, workdir):
    s = Server(binary)
    try:
        sfn = s.client()
        arn = create(sfn, "orders", kind="STANDARD", tags=[{"key": "team", "value": "iot"}])
        assert create(sfn, "orders", kind="STANDARD") == arn, "creation is idempotent"
        code, msg = error_code(sfn.create_state_machine, name="orders", definition=PASS,
                               roleArn="arn:aws:iam::123456789012:role/other")
        assert code == "StateMachineAlreadyExists", (code, msg)
        d = sfn.describe_state_machine(stateMachineArn=arn)
        assert (d["name"], d["type"], d["status"], d["definition"]) == \
            ("orders", "STANDARD", "ACTIVE", PASS), d
        for i in range(5):
            create(sfn, f"page-{i}")
        pages = list(sfn.get_paginator("list_state_machines").paginate(
            PaginationConfig={"PageSize": 2}))
        names = [m["name"] for p in pages for m in p["stateMachines"]]
        assert names == ["orders"] + [f"page-{i}" for i in range(5)], names
        assert len(pages) == 3, len(pages)
        new_def = json.dumps({"StartAt": "Q", "States": {"Q": {"Type": "Succeed"}}})
        u = sfn.update_state_machine(stateMachineArn=arn, definition=new_def)
        assert len(u["revisionId"]) == 36 and u["updateDate"].year >= 2024, u
        assert sfn.describe_state_machine(stateMachineArn=arn)["definition"] == new_def
        code, msg = error_code(sfn.update_state_machine, stateMachineArn=arn,
                               definition='{"StartAt":"Z","States":{}}')
        assert code == "InvalidDefinition" and "/States" in msg, (code, msg)
        sfn.tag_resource(resourceArn=arn, tags=[{"key": "env", "value": "dev"}])
        sfn.untag_resource(resourceArn=arn, tagKeys=["team"])
        tags = sfn.list_tags_for_resource(resourceArn=arn)["tags"]
        assert tags == [{"key": "env", "value": "dev"}], tags
        sfn.delete_state_machine(stateMachineArn=arn)
        code, _ = error_code(sfn.describe_state_machine, stateMachineArn=arn)
        assert code == "StateMachineDoesNotExist", code
        # boto3 maps the codes to its modelled exceptions.
        try:
            sfn.describe_state_machine(stateMachineArn=arn)
        except sfn.exceptions.StateMachineDoesNotExist:
            pass
        code, _ = error_code(sfn.describe_state_machine, stateMachineArn="arn:aws:sns:x")
        assert code == "InvalidArn", code
        code, _ = error_code(sfn.create_state_machine, name="bad name", definition=PASS,
                             roleArn=ROLE)
        assert code == "InvalidName", code
    finally:
        s.stop()


@test
def boto3_start_sync_execution(binary, workdir):
    s = Server(binary)
    try:
        sfn = s.client()
        arn = create(sfn, "w1", W1)
        event = open(os.path.join(SHARED_BENCH, "event.json")).read()
        r = sfn.start_sync_execution(stateMachineArn=arn, input=event, name="first")
        assert r["status"] == "SUCCEEDED", r
        assert r["executionArn"].startswith(
            "arn:aws:states:us-east-1:123456789012:express:w1:first:"), r["executionArn"]
        json.loads(r["output"])
        assert r["billingDetails"]["billedDurationInMilliseconds"] >= 100, r
        assert r["stopDate"] >= r["startDate"]
        fail = json.dumps({"StartAt": "F", "States": {"F": {
            "Type": "Fail", "Error": "Order.Invalid", "Cause": "no items"}}})
        r = sfn.start_sync_execution(stateMachineArn=create(sfn, "fails", fail), input="{}")
        assert (r["status"], r["error"], r["cause"]) == ("FAILED", "Order.Invalid", "no items")
        code, _ = error_code(sfn.start_sync_execution, stateMachineArn=arn, input="{oops")
        assert code == "InvalidExecutionInput", code
        code, _ = error_code(sfn.start_sync_execution, stateMachineArn=arn,
                             input=json.dumps("x" * 262144))
        assert code == "InvalidExecutionInput", code
        std = create(sfn, "std", kind="STANDARD")
        code, _ = error_code(sfn.start_sync_execution, stateMachineArn=std, input="{}")
        assert code == "StateMachineTypeNotSupported", code
        meta = sfn.start_sync_execution(stateMachineArn=arn, input=event,
                                        includedData="METADATA_ONLY")
        assert "output" not in meta and meta["outputDetails"] == {"included": False}, meta
    finally:
        s.stop()


@test
def boto3_standard_executions(binary, workdir):
    s = Server(binary)
    try:
        sfn = s.client()
        wait = json.dumps({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 60,
                                                          "End": True}}})
        slow = create(sfn, "slow", wait, kind="STANDARD")
        quick = create(sfn, "quick", PASS, kind="STANDARD")
        e = sfn.start_execution(stateMachineArn=quick, name="n1", input='{"a":1}')
        for _ in range(100):
            d = sfn.describe_execution(executionArn=e["executionArn"])
            if d["status"] != "RUNNING":
                break
            time.sleep(0.02)
        assert (d["status"], d["output"]) == ("SUCCEEDED", '{"a":1}'), d
        code, _ = error_code(sfn.start_execution, stateMachineArn=quick, name="n1",
                             input='{"a":1}')
        assert code == "ExecutionAlreadyExists", code
        long = sfn.start_execution(stateMachineArn=slow, name="long")["executionArn"]
        running = sfn.list_executions(stateMachineArn=slow, statusFilter="RUNNING")
        assert [x["executionArn"] for x in running["executions"]] == [long], running
        stop = sfn.stop_execution(executionArn=long, error="Ops.Stop", cause="test")
        d = sfn.describe_execution(executionArn=long)
        assert (d["status"], d["error"], d["cause"]) == ("ABORTED", "Ops.Stop", "test"), d
        assert d["stopDate"] == stop["stopDate"], (d, stop)
        smx = sfn.describe_state_machine_for_execution(executionArn=long)
        assert smx["definition"] == wait, smx
        code, _ = error_code(sfn.describe_execution, executionArn=long + "x")
        assert code == "ExecutionDoesNotExist", code
        for i in range(3):
            sfn.start_execution(stateMachineArn=quick, name=f"p{i}")
        pages = list(sfn.get_paginator("list_executions").paginate(
            stateMachineArn=quick, PaginationConfig={"PageSize": 2}))
        assert sum(len(p["executions"]) for p in pages) == 4 and len(pages) == 2, pages
    finally:
        s.stop()


@test
def boto3_validate_definition(binary, workdir):
    s = Server(binary)
    try:
        sfn = s.client()
        r = sfn.validate_state_machine_definition(
            definition=json.dumps({"StartAt": "A", "States": {"A": {"Type": "Pass",
                                                                 "Next": "B"}}}))
        assert r["result"] == "FAIL", r
        d = r["diagnostics"][0]
        assert (d["severity"], d["code"], d["location"]) == \
            ("ERROR", "MISSING_TRANSITION_TARGET", "/States/A/Next"), d
        assert sfn.validate_state_machine_definition(definition=PASS)["result"] == "OK"
    finally:
        s.stop()


@test
def host_prefix_settings_users_need(binary, workdir):
    """StartSyncExecution's model prefixes the host with `sync-`; a local endpoint needs the
    prefix turned off, by the client setting or the environment variable."""
    s = Server(binary)
    try:
        arn = create(s.client(), "p")
        r = s.client(inject_host_prefix=False).start_sync_execution(stateMachineArn=arn)
        assert r["status"] == "SUCCEEDED", r
        env = dict(os.environ, AWS_DISABLE_HOST_PREFIX_INJECTION="true")
        out = subprocess.run(
            [sys.executable, "-c",
             "import boto3,sys;c=boto3.client('stepfunctions',endpoint_url=sys.argv[1],"
             "region_name='us-east-1',aws_access_key_id='a',aws_secret_access_key='b');"
             "print(c.start_sync_execution(stateMachineArn=sys.argv[2])['status'])",
             s.url, arn], env=env, capture_output=True, text=True, timeout=60)
        assert out.stdout.strip() == "SUCCEEDED", (out.stdout, out.stderr)
    finally:
        s.stop()


def aws(s, *args, env_extra=None):
    env = dict(os.environ, AWS_ACCESS_KEY_ID="AKIDEXAMPLE", AWS_SECRET_ACCESS_KEY="secret",
               AWS_DEFAULT_REGION="us-east-1", AWS_DISABLE_HOST_PREFIX_INJECTION="true",
               AWS_PAGER="")
    env.update(env_extra or {})
    return subprocess.run([AWS_CLI, "stepfunctions", *args, "--endpoint-url", s.url,
                           "--output", "json"], env=env, capture_output=True, text=True,
                          timeout=120)


@test
def aws_cli(binary, workdir):
    s = Server(binary)
    try:
        r = aws(s, "create-state-machine", "--name", "cli", "--definition", PASS,
                "--role-arn", ROLE, "--type", "EXPRESS")
        assert r.returncode == 0, r.stderr
        arn = json.loads(r.stdout)["stateMachineArn"]
        r = aws(s, "start-sync-execution", "--state-machine-arn", arn, "--input", '{"k":1}')
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert (out["status"], out["output"]) == ("SUCCEEDED", '{"k":1}'), out
        r = aws(s, "list-state-machines")
        assert [m["name"] for m in json.loads(r.stdout)["stateMachines"]] == ["cli"], r.stdout
        r = aws(s, "describe-state-machine", "--state-machine-arn", arn + "-missing")
        assert r.returncode != 0 and "StateMachineDoesNotExist" in r.stderr, r.stderr
    finally:
        s.stop()


@test
def sigv4_is_verified_when_the_server_has_credentials(binary, workdir):
    creds = os.path.join(workdir, "credentials")
    with open(creds, "w") as f:
        f.write("[default]\naws_access_key_id = AKIDSTEP\naws_secret_access_key = s3cr3t\n")
    # Beyond loopback (every address) is allowed only with credentials.
    s = Server(binary, "--credentials", creds, listen="0.0.0.0:0")
    try:
        good = s.client("AKIDSTEP", "s3cr3t")
        arn = create(good, "signed")
        assert good.start_sync_execution(stateMachineArn=arn)["status"] == "SUCCEEDED"
        code, _ = error_code(s.client("AKIDSTEP", "wrong").list_state_machines)
        assert code == "InvalidSignatureException", code
        code, _ = error_code(s.client("AKIDOTHER", "s3cr3t").list_state_machines)
        assert code == "UnrecognizedClientException", code
        unsigned = boto3.client("stepfunctions", endpoint_url=s.url, region_name="us-east-1",
                                config=Config(signature_version=botocore.UNSIGNED,
                                              retries={"max_attempts": 1}))
        code, _ = error_code(unsigned.list_state_machines)
        assert code == "MissingAuthenticationTokenException", code
        # A request signed 10 minutes ago is refused, and nothing runs.
        real = botocore.auth.datetime.datetime

        class Skewed(real):
            @classmethod
            def utcnow(cls):
                return real.utcnow() - datetime.timedelta(minutes=10)

            @classmethod
            def now(cls, tz=None):
                return real.now(tz) - datetime.timedelta(minutes=10)

        botocore.auth.datetime.datetime = Skewed
        try:
            code, msg = error_code(good.start_sync_execution, stateMachineArn=arn)
        finally:
            botocore.auth.datetime.datetime = real
        assert code == "InvalidSignatureException" and "expired" in msg, (code, msg)
        # The AWS CLI signs too.
        r = aws(s, "list-state-machines", env_extra={"AWS_ACCESS_KEY_ID": "AKIDSTEP",
                                                      "AWS_SECRET_ACCESS_KEY": "s3cr3t"})
        assert r.returncode == 0 and "signed" in r.stdout, r.stderr
    finally:
        s.stop()
    r = subprocess.run([binary, "serve", "--listen", "0.0.0.0:0"], capture_output=True,
                       text=True, timeout=20)
    assert r.returncode == 2 and "loopback" in r.stderr, (r.returncode, r.stderr)


@test
def state_dir_survives_a_crash(binary, workdir):
    state = os.path.join(workdir, "state")
    s = Server(binary, "--state-dir", state)
    try:
        sfn = s.client()
        arn = create(sfn, "kept", W1, tags=[{"key": "k", "value": "v"}])
        create(sfn, "gone")
        sfn.delete_state_machine(stateMachineArn=arn.replace("kept", "gone"))
    finally:
        s.stop(kill=True)
    s = Server(binary, "--state-dir", state)
    try:
        sfn = s.client()
        names = [m["name"] for m in sfn.list_state_machines()["stateMachines"]]
        assert names == ["kept"], names
        assert sfn.describe_state_machine(stateMachineArn=arn)["definition"] == W1
        assert sfn.list_tags_for_resource(resourceArn=arn)["tags"] == [{"key": "k",
                                                                        "value": "v"}]
    finally:
        s.stop()


@test
def mocks_by_test_case(binary, workdir):
    definition = json.dumps({"StartAt": "Charge", "States": {"Charge": {
        "Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
        "Parameters": {"FunctionName": "charge"}, "End": True}}})
    mock = {"StateMachines": {"pay": {"TestCases": {
        "HappyPath": {"Charge": "ChargeOk"}, "Declined": {"Charge": "ChargeFails"}}}},
        "MockedResponses": {
            "ChargeOk": {"0": {"Return": {"StatusCode": 200, "Payload": {"ok": True}}}},
            "ChargeFails": {"0": {"Throw": {"Error": "Card.Declined", "Cause": "no funds"}}}}}
    path = os.path.join(workdir, "mock.json")
    with open(path, "w") as f:
        json.dump(mock, f)
    env = dict(os.environ, SFN_MOCK_CONFIG=path)
    s = Server(binary, env=env)
    try:
        sfn = s.client()
        arn = create(sfn, "pay", definition)
        ok = sfn.start_sync_execution(stateMachineArn=arn + "#HappyPath")
        assert ok["status"] == "SUCCEEDED", ok
        assert json.loads(ok["output"])["Payload"] == {"ok": True}, ok
        bad = sfn.start_sync_execution(stateMachineArn=arn + "#Declined")
        assert (bad["status"], bad["error"]) == ("FAILED", "Card.Declined"), bad
        # No test case: the resource is not bound, and the failure says so.
        plain = sfn.start_sync_execution(stateMachineArn=arn)
        assert plain["status"] == "FAILED", plain
        code, _ = error_code(sfn.start_sync_execution, stateMachineArn=arn + "#Nope")
        assert code == "InvalidArn", code
    finally:
        s.stop()


@test
def boto3_versions_and_aliases(binary, workdir):
    state = os.path.join(workdir, "state")
    s = Server(binary, "--state-dir", state)
    try:
        sfn = s.client()
        v1_def = json.dumps({"StartAt": "P", "States": {"P": {"Type": "Pass",
                                                            "Result": "v1", "End": True}}})
        v2_def = v1_def.replace("v1", "v2")
        r = sfn.create_state_machine(name="ver", definition=v1_def, roleArn=ROLE,
                                     type="STANDARD", publish=True, versionDescription="one")
        arn, v1 = r["stateMachineArn"], r["stateMachineVersionArn"]
        assert v1 == arn + ":1", r
        # Publishing an unchanged machine gives the same version.
        assert sfn.publish_state_machine_version(stateMachineArn=arn)[
            "stateMachineVersionArn"] == v1
        u = sfn.update_state_machine(stateMachineArn=arn, definition=v2_def, publish=True)
        v2 = u["stateMachineVersionArn"]
        assert v2 == arn + ":2", u
        code, _ = error_code(sfn.publish_state_machine_version, stateMachineArn=arn,
                             revisionId="not-the-current-one")
        assert code == "ConflictException", code
        listed = sfn.list_state_machine_versions(stateMachineArn=arn)["stateMachineVersions"]
        assert [v["stateMachineVersionArn"] for v in listed] == [v2, v1], listed
        d = sfn.describe_state_machine(stateMachineArn=v1)
        assert (d["definition"], d["description"]) == (v1_def, "one"), d
        alias = sfn.create_state_machine_alias(
            name="live", routingConfiguration=[{"stateMachineVersionArn": v1, "weight": 100}]
        )["stateMachineAliasArn"]
        assert alias == arn + ":live", alias
        code, _ = error_code(sfn.create_state_machine_alias, name="bad", routingConfiguration=[
            {"stateMachineVersionArn": v1, "weight": 60},
            {"stateMachineVersionArn": v2, "weight": 60}])
        assert code == "ValidationException", code

        def run(target, name):
            e = sfn.start_execution(stateMachineArn=target, name=name)["executionArn"]
            for _ in range(100):
                d = sfn.describe_execution(executionArn=e)
                if d["status"] != "RUNNING":
                    return d
                time.sleep(0.02)
            raise AssertionError(d)

        d = run(alias, "through-alias")
        assert (d["output"], d["stateMachineAliasArn"], d["stateMachineVersionArn"]) == \
            ('"v1"', alias, v1), d
        assert run(v2, "through-v2")["output"] == '"v2"'
        assert run(arn, "latest")["output"] == '"v2"'
        through = sfn.list_executions(stateMachineArn=alias)["executions"]
        assert [e["name"] for e in through] == ["through-alias"], through
        sfn.update_state_machine_alias(
            stateMachineAliasArn=alias,
            routingConfiguration=[{"stateMachineVersionArn": v2, "weight": 100}])
        assert run(alias, "after-update")["output"] == '"v2"'
        code, msg = error_code(sfn.delete_state_machine_version, stateMachineVersionArn=v2)
        assert code == "ConflictException" and "live" in msg, (code, msg)
        a = sfn.describe_state_machine_alias(stateMachineAliasArn=alias)
        assert a["routingConfiguration"] == [{"stateMachineVersionArn": v2, "weight": 100}], a
        aliases = sfn.list_state_machine_aliases(stateMachineArn=arn)["stateMachineAliases"]
        assert [x["stateMachineAliasArn"] for x in aliases] == [alias], aliases
    finally:
        s.stop()
    # Versions and aliases survive a restart.
    s = Server(binary, "--state-dir", state)
    try:
        sfn = s.client()
        a = sfn.describe_state_machine_alias(stateMachineAliasArn=alias)
        assert a["routingConfiguration"][0]["stateMachineVersionArn"] == v2, a
        assert sfn.describe_state_machine(stateMachineArn=v1)["definition"] == v1_def
        sfn.delete_state_machine_alias(stateMachineAliasArn=alias)
        sfn.delete_state_machine_version(stateMachineVersionArn=v1)
        code, _ = error_code(sfn.describe_state_machine, stateMachineArn=v1)
        assert code == "StateMachineDoesNotExist", code
        code, _ = error_code(sfn.describe_state_machine_alias, stateMachineAliasArn=alias)
        assert code == "ResourceNotFound", code
    finally:
        s.stop()


@test
def boto3_test_state(binary, workdir):
    s = Server(binary)
    try:
        sfn = s.client()
        task = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                "InputPath": "$.order", "Parameters": {"FunctionName": "f", "Payload.$": "$"},
                "ResultSelector": {"body.$": "$.Payload"}, "ResultPath": "$.res",
                "OutputPath": "$.res", "Next": "Ship",
                "Retry": [{"ErrorEquals": ["Lambda.TooMany"], "MaxAttempts": 2,
                           "IntervalSeconds": 3, "BackoffRate": 2}],
                "Catch": [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.err",
                           "Next": "Recover"}]}
        r = sfn.test_state(definition=json.dumps(task), input='{"order":{"id":7}}',
                           inspectionLevel="DEBUG",
                           mock={"result": '{"Payload":{"ok":true}}'})
        assert (r["status"], r["nextState"], json.loads(r["output"])) == \
            ("SUCCEEDED", "Ship", {"body": {"ok": True}}), r
        d = r["inspectionData"]
        assert json.loads(d["afterInputPath"]) == {"id": 7}, d
        assert json.loads(d["afterParameters"]) == {"FunctionName": "f", "Payload": {"id": 7}}
        assert json.loads(d["afterResultSelector"]) == {"body": {"ok": True}}, d
        assert json.loads(d["afterResultPath"])["res"] == {"body": {"ok": True}}, d
        r = sfn.test_state(definition=json.dumps(task), input="{}", inspectionLevel="DEBUG",
                           mock={"errorOutput": {"error": "Lambda.TooMany", "cause": "slow"}},
                           stateConfiguration={"retrierRetryCount": 1})
        assert r["status"] == "RETRIABLE", r
        assert r["inspectionData"]["errorDetails"] == {"retryIndex": 0,
                                                       "retryBackoffIntervalSeconds": 6}, r
        # Retries exhausted: the catcher takes it.
        r = sfn.test_state(definition=json.dumps(task), input='{"order":{"id":1}}',
                           mock={"errorOutput": {"error": "Lambda.TooMany", "cause": "slow"}},
                           stateConfiguration={"retrierRetryCount": 2})
        assert (r["status"], r["nextState"], r["error"]) == \
            ("CAUGHT_ERROR", "Recover", "Lambda.TooMany"), r
        assert json.loads(r["output"]) == {"order": {"id": 1}, "err": {
            "Error": "Lambda.TooMany", "Cause": "slow"}}, r
        choice = {"Type": "Choice", "Default": "Small",
                  "Choices": [{"Variable": "$.n", "NumericGreaterThan": 5, "Next": "Big"}]}
        r = sfn.test_state(definition=json.dumps(choice), input='{"n":9}')
        assert (r["status"], r["nextState"]) == ("SUCCEEDED", "Big"), r
        machine = {"QueryLanguage": "JSONata", "StartAt": "A", "States": {"A": {
            "Type": "Pass", "Output": "{% $states.input.x + $v %}",
            "Assign": {"w": "{% $v * 2 %}"}, "End": True}}}
        r = sfn.test_state(definition=json.dumps(machine), stateName="A", input='{"x":1}',
                           variables='{"v":10}', inspectionLevel="DEBUG")
        assert (r["status"], r["output"]) == ("SUCCEEDED", "11"), r
        assert "nextState" not in r, r
        assert json.loads(r["inspectionData"]["variables"]) == {"v": 10, "w": 20}, r
        fail = {"Type": "Fail", "Error": "E.x", "Cause": "because"}
        r = sfn.test_state(definition=json.dumps(fail))
        assert (r["status"], r["error"], r["cause"]) == ("FAILED", "E.x", "because"), r
        # A Map runs with a mock of its whole result; without one it is refused.
        mapped = {"Type": "Map", "ItemsPath": "$.xs", "ResultPath": "$.doubled", "End": True,
                  "ItemProcessor": {"StartAt": "D", "States": {"D": {"Type": "Pass", "End": True}}}}
        r = sfn.test_state(definition=json.dumps(mapped), input='{"xs":[1,2]}',
                           mock={"result": "[2,4]"})
        assert (r["status"], json.loads(r["output"])) == \
            ("SUCCEEDED", {"xs": [1, 2], "doubled": [2, 4]}), r
        code, _ = error_code(sfn.test_state, definition=json.dumps(mapped), input='{"xs":[1]}')
        assert code == "ValidationException", code
        code, _ = error_code(sfn.test_state, definition=json.dumps(task), input="{bad")
        assert code == "InvalidExecutionInput", code
        code, _ = error_code(sfn.test_state, definition='{"Type":"Nope"}')
        assert code == "InvalidDefinition", code
    finally:
        s.stop()


class Echo(http.server.BaseHTTPRequestHandler):
    """An HTTP endpoint for HTTP Tasks: answers every POST with what it received."""

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        seen = {"path": self.path, "auth": self.headers.get("authorization"),
                "body": json.loads(body or b"null")}
        out = json.dumps(seen).encode()
        self.send_response(201)
        self.send_header("content-type", "application/json")
        self.send_header("x-echo", "yes")
        self.send_header("content-length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


@test
def boto3_test_state_trace_map_views_and_context(binary, workdir):
    """TRACE shows an HTTP Task's real request and response (the binding's credential header
    only with revealSecrets); DEBUG of a Map shows its items at each step; `context` is the
    context object the state sees; the fields that only fit some states are refused."""
    endpoint = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=endpoint.serve_forever, daemon=True).start()
    config = os.path.join(workdir, "resources.toml")
    with open(config, "w") as f:
        f.write('[[resources]]\nresource = "arn:aws:states:::http:invoke"\nkind = "http"\n'
                'headers = { Authorization = "Bearer s3cret" }\n')
    s = Server(binary, "--config", config)
    try:
        sfn = s.client()
        url = "http://127.0.0.1:%d/orders" % endpoint.server_address[1]
        task = {"Type": "Task", "Resource": "arn:aws:states:::http:invoke",
                "Parameters": {"ApiEndpoint": url, "Method": "POST",
                               "Headers": {"x-trace": "t1"}, "RequestBody": {"id.$": "$.id"}},
                "ResultSelector": {"status.$": "$.StatusCode", "seen.$": "$.ResponseBody"},
                "End": True}
        r = sfn.test_state(definition=json.dumps(task), input='{"id":7}', inspectionLevel="TRACE")
        assert r["status"] == "SUCCEEDED", r
        assert json.loads(r["output"]) == {"status": 201, "seen": {
            "path": "/orders", "auth": "Bearer s3cret", "body": {"id": 7}}}, r
        d = r["inspectionData"]
        req, resp = d["request"], d["response"]
        assert (req["protocol"], req["method"], req["url"]) == ("http", "POST", url), req
        assert json.loads(req["body"]) == {"id": 7}, req
        assert "x-trace: t1" in req["headers"], req
        assert "s3cret" not in req["headers"], req
        assert (resp["statusCode"], resp["statusMessage"]) == ("201", "Created"), resp
        assert "x-echo: yes" in resp["headers"], resp
        assert json.loads(resp["body"])["auth"] == "Bearer s3cret", resp
        assert json.loads(d["afterParameters"])["RequestBody"] == {"id": 7}, d
        r = sfn.test_state(definition=json.dumps(task), input='{"id":8}', inspectionLevel="TRACE",
                           revealSecrets=True)
        assert "authorization: Bearer s3cret" in r["inspectionData"]["request"]["headers"], r
        # DEBUG shows no exchange.
        r = sfn.test_state(definition=json.dumps(task), input='{"id":9}', inspectionLevel="DEBUG")
        assert "request" not in r["inspectionData"], r
        # A Map: its items after ItemsPath and ItemSelector, and what it tolerates.
        mapped = {"Type": "Map", "ItemsPath": "$.xs", "MaxConcurrencyPath": "$.width",
                  "ItemSelector": {"v.$": "$$.Map.Item.Value", "i.$": "$$.Map.Item.Index"},
                  "ToleratedFailureCount": 1, "End": True,
                  "ItemProcessor": {"StartAt": "D", "States": {"D": {"Type": "Pass", "End": True}}}}
        r = sfn.test_state(definition=json.dumps(mapped), input='{"xs":["a","b"],"width":3}',
                           inspectionLevel="DEBUG", mock={"result": "[1,2]"})
        d = r["inspectionData"]
        assert json.loads(d["afterItemsPath"]) == ["a", "b"], d
        assert json.loads(d["afterItemSelector"]) == [{"v": "a", "i": 0}, {"v": "b", "i": 1}], d
        assert (d["maxConcurrency"], d["toleratedFailureCount"]) == (3, 1), d
        # Two failed iterations exceed the one it tolerates.
        r = sfn.test_state(definition=json.dumps(mapped), input='{"xs":["a","b"],"width":3}',
                           mock={"result": "[1,2]"},
                           stateConfiguration={"mapIterationFailureCount": 2})
        assert (r["status"], r["error"]) == \
            ("FAILED", "States.ExceedToleratedFailureThreshold"), r
        r = sfn.test_state(definition=json.dumps(mapped), input='{"xs":["a","b"],"width":3}',
                           mock={"result": "[1,2]"},
                           stateConfiguration={"mapIterationFailureCount": 1})
        assert r["status"] == "SUCCEEDED", r
        # `context` is the context object the state sees, given with a mock.
        ctx_task = {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                    "Parameters": {"FunctionName": "f", "token.$": "$$.Task.Token",
                                   "name.$": "$$.Execution.Name"},
                    "ResultPath": "$.r", "End": True}
        context = {"Execution": {"Name": "exec-1"}, "Task": {"Token": "tok-42"}}
        r = sfn.test_state(definition=json.dumps(ctx_task), input="{}", inspectionLevel="DEBUG",
                           context=json.dumps(context), mock={"result": "{}"})
        assert json.loads(r["inspectionData"]["afterParameters"]) == {
            "FunctionName": "f", "token": "tok-42", "name": "exec-1"}, r
        code, msg = error_code(sfn.test_state, definition=json.dumps(ctx_task), input="{}",
                               context=json.dumps(context))
        assert code == "ValidationException" and "mock" in msg, (code, msg)
        code, msg = error_code(sfn.test_state, definition='{"Type":"Pass","End":true}',
                               mock={"result": "{}"})
        assert code == "ValidationException" and "Pass" in msg, (code, msg)
        code, msg = error_code(sfn.test_state, definition=json.dumps(mapped),
                               input='{"xs":[]}', mock={"errorOutput": {"error": "E", "cause": "c"}},
                               stateConfiguration={"errorCausedByState": "Nowhere"})
        assert code == "ValidationException" and "Nowhere" in msg, (code, msg)
        r = sfn.test_state(definition=json.dumps(mapped), input='{"xs":[]}',
                           mock={"errorOutput": {"error": "E", "cause": "c"}},
                           stateConfiguration={"errorCausedByState": "D"})
        assert (r["status"], r["error"]) == ("FAILED", "E"), r
    finally:
        s.stop()
        endpoint.shutdown()


@test
def javascript_sdk(binary, workdir):
    """The JavaScript SDK as the README sets it up (CI installs @aws-sdk/client-sfn into
    STEPSTREAM_JS_MODULES; without node or the module this test says so and fails)."""
    modules = os.environ.get("STEPSTREAM_JS_MODULES")
    node = shutil.which("node")
    assert node and modules and os.path.isdir(os.path.join(modules, "@aws-sdk", "client-sfn")), \
        f"node ({node}) and @aws-sdk/client-sfn under STEPSTREAM_JS_MODULES ({modules}) are needed"
    # Node resolves bare imports from a node_modules beside the script or above it.
    script = os.path.join(workdir, "js_client.mjs")
    shutil.copy(os.path.join(os.path.dirname(__file__), "js_client.mjs"), script)
    os.symlink(modules, os.path.join(workdir, "node_modules"))
    s = Server(binary)
    try:
        out = subprocess.run([node, script, s.url], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout.strip().splitlines()[-1]) == {
            "status": "SUCCEEDED", "output": '{"js":1}'}, out.stdout
    finally:
        s.stop()


@test
def boto3_execution_history(binary, workdir):
    definition = json.dumps({"StartAt": "Charge", "States": {
        "Charge": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                   "Parameters": {"FunctionName": "charge"}, "ResultSelector": {"ok.$": "$.Payload.ok"},
                   "Retry": [{"ErrorEquals": ["Lambda.TooMany"], "IntervalSeconds": 1,
                              "BackoffRate": 1, "MaxAttempts": 2}],
                   "Next": "Done"},
        "Done": {"Type": "Succeed"}}})
    mock = {"StateMachines": {"hist": {"TestCases": {"Retry": {"Charge": "Flaky"}}}},
            "MockedResponses": {"Flaky": {
                "0": {"Throw": {"Error": "Lambda.TooMany", "Cause": "slow down"}},
                "1": {"Return": {"StatusCode": 200, "Payload": {"ok": True}}}}}}
    path = os.path.join(workdir, "mock.json")
    with open(path, "w") as f:
        json.dump(mock, f)
    s = Server(binary, "--mock-config", path)
    try:
        sfn = s.client()
        arn = create(sfn, "hist", definition, kind="STANDARD")
        e = sfn.start_execution(stateMachineArn=arn + "#Retry", name="h1", input='{"n":1}')
        for _ in range(200):
            if sfn.describe_execution(executionArn=e["executionArn"])["status"] != "RUNNING":
                break
            time.sleep(0.02)
        events = list(sfn.get_paginator("get_execution_history").paginate(
            executionArn=e["executionArn"], PaginationConfig={"PageSize": 3}))
        events = [ev for page in events for ev in page["events"]]
        types = [ev["type"] for ev in events]
        assert types == [
            "ExecutionStarted", "TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskFailed",
            "TaskScheduled", "TaskStarted", "TaskSucceeded", "TaskStateExited",
            "SucceedStateEntered", "SucceedStateExited", "ExecutionSucceeded"], types
        assert [ev["id"] for ev in events] == list(range(1, 13)), events
        # As AWS records it, the first state points at 0, the rest at the event before.
        assert events[1]["previousEventId"] == 0, events[1]
        assert all(ev["previousEventId"] == ev["id"] - 1 for ev in events[2:]), events
        assert events[0]["executionStartedEventDetails"]["input"] == '{"n":1}', events[0]
        failed = events[4]["taskFailedEventDetails"]
        assert (failed["error"], failed["cause"]) == ("Lambda.TooMany", "slow down"), failed
        assert events[-1]["executionSucceededEventDetails"]["output"] == '{"ok":true}', events
        newest = sfn.get_execution_history(executionArn=e["executionArn"], reverseOrder=True,
                                           maxResults=1, includeExecutionData=False)
        assert newest["events"][0]["type"] == "ExecutionSucceeded", newest
        assert "output" not in newest["events"][0].get("executionSucceededEventDetails", {})
        # A running execution's history is what it has done so far, read from its shard.
        ahead = json.dumps({"StartAt": "P", "States": {
            "P": {"Type": "Pass", "Result": {"step": 1}, "Next": "W"},
            "W": {"Type": "Wait", "Seconds": 600, "End": True}}})
        running = sfn.start_execution(stateMachineArn=create(sfn, "ahead", ahead, kind="STANDARD"),
                                      input='{"k":2}')["executionArn"]
        for _ in range(100):
            h = sfn.get_execution_history(executionArn=running)["events"]
            if len(h) > 1:
                break
            time.sleep(0.02)
        assert [ev["type"] for ev in h] == ["ExecutionStarted", "PassStateEntered",
                                            "PassStateExited", "WaitStateEntered"], h
        assert h[2]["stateExitedEventDetails"]["output"] == '{"step":1}', h[2]
        assert sfn.describe_execution(executionArn=running)["status"] == "RUNNING"
        sfn.stop_execution(executionArn=running)
        # A stopped execution ends with ExecutionAborted.
        wait = json.dumps({"StartAt": "W", "States": {"W": {"Type": "Wait", "Seconds": 600,
                                                          "End": True}}})
        slow = create(sfn, "slow", wait, kind="STANDARD")
        long = sfn.start_execution(stateMachineArn=slow)["executionArn"]
        sfn.stop_execution(executionArn=long, error="Ops", cause="enough")
        for _ in range(100):
            h = sfn.get_execution_history(executionArn=long)["events"]
            if h[-1]["type"] == "ExecutionAborted":
                break
            time.sleep(0.02)
        assert [ev["type"] for ev in h] == ["ExecutionStarted", "WaitStateEntered",
                                            "ExecutionAborted"], h
        assert h[-1]["executionAbortedEventDetails"] == {"error": "Ops", "cause": "enough"}, h
    finally:
        s.stop()


@test
def express_execution_logs(binary, workdir):
    log = os.path.join(workdir, "executions.log")
    s = Server(binary, "--execution-log", log)
    try:
        sfn = s.client()
        dest = [{"cloudWatchLogsLogGroup": {
            "logGroupArn": "arn:aws:logs:us-east-1:123456789012:log-group:sfn:*"}}]
        arn = create(sfn, "logged", PASS, loggingConfiguration={
            "level": "ALL", "includeExecutionData": True, "destinations": dest})
        r = sfn.start_sync_execution(stateMachineArn=arn, input='{"k":1}')
        fail = json.dumps({"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "E",
                                                          "Cause": "c"}}})
        errors_only = create(sfn, "errors", fail, loggingConfiguration={
            "level": "ERROR", "includeExecutionData": False, "destinations": dest})
        quiet = create(sfn, "quiet", PASS)
        sfn.start_sync_execution(stateMachineArn=quiet, input="{}")
        f = sfn.start_sync_execution(stateMachineArn=errors_only, input='{"secret":1}')
        lines = [json.loads(l) for l in open(log)]
        first = [l for l in lines if l["execution_arn"] == r["executionArn"]]
        assert [l["type"] for l in first] == ["ExecutionStarted", "PassStateEntered",
                                              "PassStateExited", "ExecutionSucceeded"], first
        assert first[0]["id"] == "1" and first[0]["previous_event_id"] == "0", first[0]
        assert first[0]["details"]["input"] == '{"k":1}', first[0]
        assert int(first[-1]["event_timestamp"]) >= 1.7e12, first[-1]
        failed = [l for l in lines if l["execution_arn"] == f["executionArn"]]
        assert [l["type"] for l in failed] == ["ExecutionFailed"], failed
        assert failed[0]["details"] == {"error": "E", "cause": "c"}, failed
        assert not any(l["execution_arn"].split(":")[6] == "quiet" for l in lines), lines
    finally:
        s.stop()


def main():
    global W1, SHARED_BENCH, AWS_CLI
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--bench-dir", default=os.path.join(
        os.path.dirname(__file__), "..", "..", "..", "shared", "bench", "workloads"))
    ap.add_argument("--only")
    args = ap.parse_args()
    SHARED_BENCH = args.bench_dir
    W1 = open(os.path.join(SHARED_BENCH, "w1_transform.asl.json")).read()
    AWS_CLI = shutil.which("aws", path=os.path.dirname(sys.executable) + os.pathsep
                           + os.environ.get("PATH", ""))
    if AWS_CLI is None:
        print("the AWS CLI (aws) is not installed: pip install awscli")
        return 1
    binary = os.path.abspath(args.bin)
    passed = failed = 0
    for t in TESTS:
        if args.only and args.only not in t.__name__:
            continue
        workdir = tempfile.mkdtemp(prefix="stepstream-api-")
        started = time.time()
        try:
            t(binary, workdir)
            passed += 1
            print(f"ok   {t.__name__} ({time.time() - started:.1f} s)")
        except Exception:
            failed += 1
            print(f"FAIL {t.__name__}")
            traceback.print_exc()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
