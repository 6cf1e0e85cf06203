#!/usr/bin/env node
// The accuracy of an exported classifier (examples/export_onnx) on IDX images and labels, run
// by ONNX Runtime for the web (npm onnxruntime-web, WASM backend, one thread) under Node.js,
// offline: what predict_fashion_mnist computes with the library, computed by ONNX Runtime.
//
//   node onnx_accuracy.js ORT_PREFIX MODEL.onnx IMAGES LABELS C,H,W|F
//
// IMAGES and LABELS: IDX files (idx3 ubyte images, idx1 ubyte labels), raw or gzip. Each pixel
// byte x becomes the float32 x * float32(1 / 255), as dlb::LoadFashionMnist and
// predict_fashion_mnist read them, so the model gets the same numbers. The last argument is
// the model's input sample shape: "1,28,28" feeds [N, 1, 28, 28], "784" feeds [N, 784].
// The model's single input takes the images, its first output is read as the logits
// [N, classes]; the predicted class is the first index of the largest logit (Eigen's
// maxCoeff, which predict_fashion_mnist uses, keeps the first maximum too).
//
// Prints "Accuracy: 0.8123 (8123 of 10000)" in predict_fashion_mnist's format and, one line
// each, how many images were predicted as each class ("Predicted 0: 1012"). Exit status 0 on
// success, 1 on any error, 2 on a usage error.
'use strict';

const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

function fail(message) {
  process.stderr.write(`onnx_accuracy: ${message}\n`);
  process.exit(1);
}

/// The bytes of an IDX file, inflated when it is gzip (magic 1f 8b).
function readIdx(file, expectedType) {
  let bytes = fs.readFileSync(file);
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) bytes = zlib.gunzipSync(bytes);
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0 || bytes[2] !== 0x08 || bytes[3] !== expectedType) {
    fail(`${file}: not an IDX file of unsigned bytes with ${expectedType - 0} dimension(s)`);
  }
  const rank = bytes[3];
  const dims = [];
  for (let d = 0; d < rank; ++d) dims.push(bytes.readUInt32BE(4 + 4 * d));
  const header = 4 + 4 * rank;
  const count = dims.reduce((a, b) => a * b, 1);
  if (bytes.length !== header + count) fail(`${file}: ${bytes.length - header} data bytes, expected ${count}`);
  return {dims, data: bytes.subarray(header)};
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length !== 5) {
    process.stderr.write('usage: node onnx_accuracy.js ORT_PREFIX MODEL.onnx IMAGES LABELS C,H,W|F\n');
    process.exit(2);
  }
  const [prefix, modelPath, imagesPath, labelsPath, shapeText] = args;
  const sample = shapeText.split(',').map(Number);
  if (!(sample.length === 1 || sample.length === 3) || !sample.every((d) => Number.isInteger(d) && d > 0)) {
    process.stderr.write(`onnx_accuracy: the sample shape must be C,H,W or F, got '${shapeText}'\n`);
    process.exit(2);
  }
  const images = readIdx(imagesPath, 3);
  const labels = readIdx(labelsPath, 1);
  const [count, rows, cols] = images.dims;
  const pixels = rows * cols;
  if (sample.reduce((a, b) => a * b, 1) !== pixels) fail(`the sample shape ${shapeText} does not hold ${rows} x ${cols} pixels`);
  if (labels.dims[0] !== count) fail(`${count} images but ${labels.dims[0]} labels`);

  const dist = path.join(path.resolve(prefix), 'node_modules', 'onnxruntime-web', 'dist');
  const entry = path.join(dist, 'ort.node.min.js');
  if (!fs.existsSync(entry)) fail(`onnxruntime-web is not installed: ${entry} is missing`);
  globalThis.fetch = (resource) => {
    throw new Error(`network access attempted (fetch ${resource}); this runner works offline`);
  };
  const ort = require(entry);
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  ort.env.wasm.wasmPaths = dist + path.sep;
  ort.env.logLevel = 'error';
  let session;
  try {
    session = await ort.InferenceSession.create(new Uint8Array(fs.readFileSync(modelPath)),
                                                {executionProviders: ['wasm']});
  } catch (error) {
    fail(`${modelPath}: ONNX Runtime ${ort.env.versions.web} refused the model: ${error.message}`);
  }
  if (session.inputNames.length !== 1) fail(`${modelPath}: expected one input, found ${session.inputNames.length}`);

  const scale = Math.fround(1 / 255);
  const kChunk = 1000;
  let correct = 0;
  const predicted = [];
  for (let first = 0; first < count; first += kChunk) {
    const n = Math.min(kChunk, count - first);
    const data = new Float32Array(n * pixels);
    for (let i = 0; i < n * pixels; ++i) data[i] = Math.fround(images.data[first * pixels + i] * scale);
    const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', data, [n, ...sample])};
    let results;
    try {
      results = await session.run(feeds);
    } catch (error) {
      fail(`${modelPath}: running on images ${first}..${first + n - 1} failed: ${error.message}`);
    }
    const logits = results[session.outputNames[0]];
    if (logits.dims.length !== 2 || logits.dims[0] !== n) fail(`${modelPath}: logits of shape [${logits.dims}], expected [${n}, classes]`);
    const classes = logits.dims[1];
    for (let j = 0; j < n; ++j) {
      let best = 0;
      for (let c = 1; c < classes; ++c) {
        if (logits.data[j * classes + c] > logits.data[j * classes + best]) best = c;
      }
      predicted[best] = (predicted[best] || 0) + 1;
      if (best === labels.data[first + j]) ++correct;
    }
  }
  await session.release();
  process.stdout.write(`Accuracy: ${(correct / count).toFixed(4)} (${correct} of ${count})\n`);
  for (let c = 0; c < predicted.length; ++c) process.stdout.write(`Predicted ${c}: ${predicted[c] || 0}\n`);
}

main().catch((error) => fail(error.stack || String(error)));
