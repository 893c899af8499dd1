// Writes crates/depin-merkle/tests/fixtures/oz-vector.json: a StandardMerkleTree
// built by the OpenZeppelin library itself, so the Rust port is checked against
// the reference implementation rather than against itself.
//
// Usage (from the repository root):
//   npm ci --prefix tools/oz-merkle
//   node tools/oz-merkle/make-vector.mjs
//
// The leaf list below is mirrored by `oz_leaves()` in
// crates/depin-merkle/tests/oz_vector.rs; change both together.
import { StandardMerkleTree } from '@openzeppelin/merkle-tree';
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, '..', '..', 'crates', 'depin-merkle', 'tests', 'fixtures', 'oz-vector.json');

const leafEncoding = ['bytes32', 'uint256'];

// bytes32 as lowercase 0x-hex, uint256 as decimal strings: exactly how
// depin-merkle writes values in its dump.
const values = [
  ['0x' + '11'.repeat(32), '1000000'],
  ['0x' + '00'.repeat(32), '0'],
  ['0x' + 'ff'.repeat(32), '340282366920938463463374607431768211455'], // u128::MAX
  ['0x' + 'ab'.repeat(16) + 'cd'.repeat(16), '18446744073709551617'], // 2^64 + 1
  ['0x8f3c2a1b9e7d6c5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f', '42'],
  ['0x' + '11'.repeat(32), '7'], // same account again: find() must return the first
  ['0x0000000000000000000000000000000000000000000000000000000000000001', '123456789012345678901234567890'],
];

const tree = StandardMerkleTree.of(values, leafEncoding);
const proofs = values.map((_, i) => tree.getProof(i));
for (const [i, v] of tree.entries()) {
  if (!StandardMerkleTree.verify(tree.root, leafEncoding, v, proofs[i])) {
    throw new Error(`proof ${i} does not verify`);
  }
}

const vector = {
  library: '@openzeppelin/merkle-tree@1.0.8',
  root: tree.root,
  leafHashes: values.map(v => tree.leafHash(v)),
  proofs,
  dump: tree.dump(),
  // The exact text of JSON.stringify(dump), to check key order and formatting too.
  dumpJson: JSON.stringify(tree.dump()),
};
writeFileSync(out, JSON.stringify(vector, null, 2) + '\n');
console.log(`wrote ${out} (root ${tree.root})`);
