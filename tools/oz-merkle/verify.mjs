// Loads a StandardMerkleTree dump with the OpenZeppelin library and checks that
// every value's proof verifies against the root. Prints
//   {"root":"0x…","leaves":N}
// on stdout and exits 0; on any failure prints the reason on stderr and exits 1.
//
// Usage: node tools/oz-merkle/verify.mjs <dump.json | oz-vector.json>
//
// Empty trees: the library refuses zero leaves. depin-merkle defines the empty
// tree's root as 0x00…00 (no proof can reach it, so nothing is claimable) and
// dumps it with `tree: []` and `values: []`; that exact shape is accepted here
// and reported with the zero root so both sides agree on it.
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import { readFileSync } from 'node:fs';

function fail(message) {
  console.error(`verify.mjs: ${message}`);
  process.exit(1);
}

const path = process.argv[2];
if (!path) fail('usage: node verify.mjs <dump.json>');

let data;
try {
  data = JSON.parse(readFileSync(path, 'utf8'));
} catch (e) {
  fail(`cannot read ${path}: ${e.message}`);
}
// Also accept a test vector written by make-vector.mjs, which wraps the dump.
if (data && data.format === undefined && data.dump !== undefined) data = data.dump;

if (
  data &&
  data.format === 'standard-v1' &&
  Array.isArray(data.tree) && data.tree.length === 0 &&
  Array.isArray(data.values) && data.values.length === 0
) {
  console.log(JSON.stringify({ root: '0x' + '00'.repeat(32), leaves: 0 }));
  process.exit(0);
}

let tree;
try {
  tree = StandardMerkleTree.load(data);
} catch (e) {
  fail(`StandardMerkleTree.load rejected the dump: ${e.message}`);
}

let n = 0;
for (const [i, value] of tree.entries()) {
  let proof;
  try {
    proof = tree.getProof(i);
  } catch (e) {
    fail(`value ${i}: cannot build proof: ${e.message}`);
  }
  if (!StandardMerkleTree.verify(tree.root, data.leafEncoding, value, proof)) {
    fail(`value ${i}: proof does not verify`);
  }
  n++;
}

console.log(JSON.stringify({ root: tree.root, leaves: n }));
