#!/usr/bin/env node
// Runs an ONNX model with ONNX Runtime for the web (npm onnxruntime-web, WASM backend, one
// thread) under Node.js, offline, and writes its outputs.
//
//   node run_onnxruntime.js ORT_PREFIX MODEL.onnx INPUTS OUTPUTS [INPUTS OUTPUTS ...]
//   node run_onnxruntime.js ORT_PREFIX --list LIST
//
// ORT_PREFIX: the folder npm installed into (npm install --prefix ORT_PREFIX onnxruntime-web),
// holding node_modules/onnxruntime-web. The model is loaded once and run once per INPUTS file;
// each run's outputs go to the OUTPUTS file after it. With --list, LIST is a text file of
// lines "MODEL<TAB>INPUTS<TAB>OUTPUTS": many models in one process, which compiles ONNX
// Runtime's WASM module once (most of a run's time) instead of once per model. Exit status 0
// on success, 1 on any error (printed on stderr, naming the model), 2 on a usage error.
//
// INPUTS and OUTPUTS are "tensor list" files, all numbers little-endian:
//   8 bytes     magic "DLBTENS1"
//   uint32      number of tensors
//   per tensor: uint32 name length, the name (UTF-8), uint32 rank, rank x int64 dims,
//               then prod(dims) float32 values in row-major order
// The inputs must name exactly the model's inputs; the outputs are all of the model's outputs,
// in the model's order. Only float32 tensors are supported.
//
// Offline: the WASM binary is loaded from the installed package's dist/ folder
// (ort.env.wasm.wasmPaths), the model from a file read here; fetch() is replaced by a function
// that throws, so an attempt to reach the network fails loudly instead of hanging.
'use strict';

const fs = require('fs');
const path = require('path');

const kMagic = 'DLBTENS1';

function fail(message) {
  process.stderr.write(`run_onnxruntime: ${message}\n`);
  process.exit(1);
}

function readTensors(file) {
  const buffer = fs.readFileSync(file);
  let pos = 0;
  const need = (bytes, what) => {
    if (pos + bytes > buffer.length) fail(`${file}: truncated at byte ${pos} (${what})`);
  };
  need(12, 'header');
  if (buffer.toString('latin1', 0, 8) !== kMagic) fail(`${file}: not a tensor list (magic)`);
  pos = 8;
  const count = buffer.readUInt32LE(pos);
  pos += 4;
  const tensors = [];
  for (let t = 0; t < count; ++t) {
    need(4, 'name length');
    const nameLength = buffer.readUInt32LE(pos);
    pos += 4;
    need(nameLength, 'name');
    const name = buffer.toString('utf8', pos, pos + nameLength);
    pos += nameLength;
    need(4, 'rank');
    const rank = buffer.readUInt32LE(pos);
    pos += 4;
    need(8 * rank, 'dims');
    const dims = [];
    let size = 1;
    for (let d = 0; d < rank; ++d) {
      const dim = Number(buffer.readBigInt64LE(pos));
      pos += 8;
      if (!(dim >= 0)) fail(`${file}: tensor '${name}': negative dimension`);
      dims.push(dim);
      size *= dim;
    }
    need(4 * size, 'data');
    const data = new Float32Array(size);
    for (let i = 0; i < size; ++i) data[i] = buffer.readFloatLE(pos + 4 * i);
    pos += 4 * size;
    tensors.push({name, dims, data});
  }
  if (pos !== buffer.length) fail(`${file}: ${buffer.length - pos} bytes after the last tensor`);
  return tensors;
}

function writeTensors(file, tensors) {
  const parts = [Buffer.from(kMagic, 'latin1')];
  const count = Buffer.alloc(4);
  count.writeUInt32LE(tensors.length);
  parts.push(count);
  for (const {name, dims, data} of tensors) {
    const nameBytes = Buffer.from(name, 'utf8');
    const head = Buffer.alloc(8 + 8 * dims.length);
    head.writeUInt32LE(nameBytes.length, 0);
    parts.push(head.subarray(0, 4), nameBytes);
    head.writeUInt32LE(dims.length, 4);
    dims.forEach((dim, d) => head.writeBigInt64LE(BigInt(dim), 8 + 8 * d));
    parts.push(head.subarray(4));
    const values = Buffer.alloc(4 * data.length);
    data.forEach((value, i) => values.writeFloatLE(value, 4 * i));
    parts.push(values);
  }
  fs.writeFileSync(file, Buffer.concat(parts));
}

/// Loads `modelPath` and runs it on each [inputs, outputs] pair of files in `runs`.
async function runModel(ort, modelPath, runs) {
  let session;
  try {
    session = await ort.InferenceSession.create(new Uint8Array(fs.readFileSync(modelPath)),
                                                {executionProviders: ['wasm']});
  } catch (error) {
    fail(`${modelPath}: ONNX Runtime ${ort.env.versions.web} refused the model: ${error.message}`);
  }
  for (const [inputsFile, outputsFile] of runs) {
    const inputs = readTensors(inputsFile);
    const given = inputs.map((t) => t.name).sort().join(', ');
    const wanted = [...session.inputNames].sort().join(', ');
    if (given !== wanted) fail(`${inputsFile}: inputs [${given}], but the model takes [${wanted}]`);
    const feeds = {};
    for (const {name, dims, data} of inputs) feeds[name] = new ort.Tensor('float32', data, dims);
    let results;
    try {
      results = await session.run(feeds);
    } catch (error) {
      fail(`${modelPath}: running on ${inputsFile} failed: ${error.message}`);
    }
    const outputs = session.outputNames.map((name) => {
      const tensor = results[name];
      if (tensor.type !== 'float32') fail(`${modelPath}: output '${name}' is ${tensor.type}, not float32`);
      return {name, dims: tensor.dims, data: tensor.data};
    });
    writeTensors(outputsFile, outputs);
  }
  await session.release();
}

function usage() {
  process.stderr.write('usage: node run_onnxruntime.js ORT_PREFIX MODEL.onnx INPUTS OUTPUTS ' +
                       '[INPUTS OUTPUTS ...]\n       node run_onnxruntime.js ORT_PREFIX --list LIST\n');
  process.exit(2);
}

async function main() {
  const args = process.argv.slice(2);
  const list = args.length === 3 && args[1] === '--list';
  if (!list && (args.length < 4 || args.length % 2 !== 0)) usage();
  const [prefix, modelPath, ...rest] = args;
  const dist = path.join(path.resolve(prefix), 'node_modules', 'onnxruntime-web', 'dist');
  const entry = path.join(dist, 'ort.node.min.js');
  if (!fs.existsSync(entry)) fail(`onnxruntime-web is not installed: ${entry} is missing`);

  globalThis.fetch = (resource) => {
    throw new Error(`network access attempted (fetch ${resource}); this runner works offline`);
  };
  const ort = require(entry);
  ort.env.wasm.numThreads = 1;  // no worker threads: deterministic, and no SharedArrayBuffer
  ort.env.wasm.proxy = false;
  ort.env.wasm.wasmPaths = dist + path.sep;
  ort.env.logLevel = 'error';

  if (!list) {
    const runs = [];
    for (let r = 0; r < rest.length; r += 2) runs.push([rest[r], rest[r + 1]]);
    await runModel(ort, modelPath, runs);
    return;
  }
  const lines = fs.readFileSync(rest[0], 'utf8').split('\n').filter((line) => line.length > 0);
  for (const [number, line] of lines.entries()) {
    const fields = line.split('\t');
    if (fields.length !== 3) fail(`${rest[0]}: line ${number + 1}: expected MODEL<TAB>INPUTS<TAB>OUTPUTS`);
    await runModel(ort, fields[0], [[fields[1], fields[2]]]);
  }
}

main().catch((error) => fail(error.stack || String(error)));
