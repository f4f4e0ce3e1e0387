// W2j's expressions with jsonata-js 2.0.6, the twin of ../shared/bench/anchors/jsonata_js_w1j.mjs
// for the Map workload: each expression compiled once; per event: parse the event, the Map's
// Items, per item the ItemSelector, the Condition and the chosen Output, then the Map's
// Output and the summary, and stringify the result. Nothing of a workflow engine: the bare
// expression work that stepstream's W2j execution must beat.
// Run: node jsonata_js_w2j.mjs DIR_WITH_event.json_AND_w2j_map.asl.json [N]
import jsonata from 'jsonata';
import fs from 'fs';
const dir = process.argv[2], n = +(process.argv[3] || 5000);
const text = fs.readFileSync(dir + '/event.json', 'utf8');
const d = JSON.parse(fs.readFileSync(dir + '/w2j_map.asl.json'));
const expr = (s) => jsonata(s.slice(2, -2).trim());
const map = d.States.FlagReadings;
const items = expr(map.Items);
const selector = Object.entries(map.ItemSelector).map(([k, s]) => [k, expr(s)]);
const proc = map.ItemProcessor.States;
const condition = expr(proc.Check.Choices[0].Condition);
// A field is an expression ({% %}) or a literal, kept as [key, expression, literal].
const outputs = (st) => Object.entries(st.Output).map(([k, s]) => typeof s === 'string' ? [k, expr(s)] : [k, null, s]);
const high = outputs(proc.High), ok = outputs(proc.Ok);
const mapOutput = expr(map.Output);
const summary = outputs(d.States.Summarize);
async function build(fields, b) {
  const o = {};
  for (const [k, e, lit] of fields) o[k] = e ? await e.evaluate(null, b) : lit;
  return o;
}
async function one(i) {
  const ev = JSON.parse(text.replace('evt-000000', 'evt-' + String(i).padStart(6, '0')));
  const list = await items.evaluate(null, { states: { input: ev } });
  const results = [];
  for (let j = 0; j < list.length; j++) {
    const ctx = { states: { input: ev, context: { Map: { Item: { Index: j, Value: list[j] } } } } };
    const item = await build(selector, ctx);
    const b = { states: { input: item } };
    results.push(await build((await condition.evaluate(null, b)) ? high : ok, b));
  }
  const merged = await mapOutput.evaluate(null, { states: { input: ev, result: results } });
  return JSON.stringify(await build(summary, { states: { input: merged } }));
}
if (process.env.SHOW) { console.log(await one(0)); process.exit(0); }
for (let i = 0; i < 500; i++) await one(i);
const t0 = process.hrtime.bigint();
for (let i = 0; i < n; i++) await one(i);
const s = Number(process.hrtime.bigint() - t0) / 1e9;
console.log(JSON.stringify({ engine: 'jsonata-js 2.0.6 node ' + process.version, workload: 'w2j', executions: n, seconds: s, per_second: Math.round(n / s) }));
