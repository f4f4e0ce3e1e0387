// The AWS SDK for JavaScript (v3) against `stepstream serve`, set up as the README says:
// node tests/api/js_client.mjs URL (with @aws-sdk/client-sfn resolvable, see .ci/run).
import { SFNClient, CreateStateMachineCommand, StartSyncExecutionCommand } from "@aws-sdk/client-sfn";

const sfn = new SFNClient({ endpoint: process.argv[2], region: "us-east-1",
  disableHostPrefix: true, credentials: { accessKeyId: "local", secretAccessKey: "local" } });
const definition = JSON.stringify({ StartAt: "P", States: { P: { Type: "Pass", End: true } } });
const created = await sfn.send(new CreateStateMachineCommand({ name: "js", definition,
  roleArn: "arn:aws:iam::123456789012:role/stepstream", type: "EXPRESS" }));
const r = await sfn.send(new StartSyncExecutionCommand({ stateMachineArn: created.stateMachineArn,
  input: '{"js":1}' }));
console.log(JSON.stringify({ status: r.status, output: r.output }));
