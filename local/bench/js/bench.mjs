// Interpreter speed baseline: runs the after-sales definition N times on aws-local-stepfunctions
// with local task handlers returning the same stub results as the Rust side.
// Usage: node bench.mjs <module dir> <definition.json> <stubs.json> <input.json> <runs>
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

// aws-local-stepfunctions 3 uses Promise.withResolvers (Node >= 22); the same for Node 20.
if (typeof Promise.withResolvers !== 'function') {
  Promise.withResolvers = function withResolvers() {
    let resolve;
    let reject;
    const promise = new Promise((res, rej) => {
      resolve = res;
      reject = rej;
    });
    return { promise, resolve, reject };
  };
}

const [moduleDir, defPath, stubsPath, inputPath, runsText] = process.argv.slice(2);
const require = createRequire(join(moduleDir, 'package.json'));
const { StateMachine } = require('aws-local-stepfunctions');

const definition = JSON.parse(readFileSync(defPath, 'utf8'));
const stubs = JSON.parse(readFileSync(stubsPath, 'utf8'));
const input = JSON.parse(readFileSync(inputPath, 'utf8'));
const runs = Number(runsText);

const handlers = {};
for (const [state, result] of Object.entries(stubs)) {
  handlers[state] = async () => structuredClone(result);
}
const waitTimeOverrides = {};
for (const [name, state] of Object.entries(definition.States)) {
  if (state.Type === 'Wait') waitTimeOverrides[name] = 0;
}

const machine = new StateMachine(definition, { validationOptions: { checkArn: false } });
const context = { Task: { Token: 'token' } };

async function once() {
  const execution = machine.run(input, {
    overrides: { taskResourceLocalHandlers: handlers, waitTimeOverrides },
    context,
  });
  return execution.result;
}

// Warm-up (JIT), then timed runs.
const last = await once();
for (let i = 0; i < Math.min(50, runs); i++) await once();
const start = process.hrtime.bigint();
for (let i = 0; i < runs; i++) await once();
const seconds = Number(process.hrtime.bigint() - start) / 1e9;
console.log(JSON.stringify({ runs, seconds, output: last }));
