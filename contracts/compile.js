#!/usr/bin/env node
// Compiles contracts/AnchorRegistry.sol with the pinned solcjs (package.json) into
// contracts/build/AnchorRegistry.json: { contract, compiler, settings, abi, bytecode, deployedBytecode }.
//
// The input is fixed (source unit name, optimizer, EVM version, metadata settings), so the
// same source always gives byte-identical output; tests recompile and compare against the
// committed artifact. Usage: node contracts/compile.js [--out DIR]
'use strict';

const fs = require('fs');
const path = require('path');
const solc = require('solc');

const CONTRACT = 'AnchorRegistry';
const SOURCE_UNIT = `${CONTRACT}.sol`; // a bare name, never an absolute path: it is hashed into the metadata

// paris: no PUSH0, so the bytecode also runs on chains that have not enabled Shanghai
// (common among proof-of-authority consortium networks); it costs a few gas per anchor.
const SETTINGS = {
  evmVersion: 'paris',
  optimizer: { enabled: true, runs: 1000 },
  metadata: { bytecodeHash: 'ipfs' },
  outputSelection: { [SOURCE_UNIT]: { [CONTRACT]: ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } },
};

function parseArgs(argv) {
  let out = path.join(__dirname, 'build');
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--out' && i + 1 < argv.length) out = path.resolve(argv[++i]);
    else if (argv[i].startsWith('--out=')) out = path.resolve(argv[i].slice('--out='.length));
    else throw new Error(`unknown argument: ${argv[i]} (usage: compile.js [--out DIR])`);
  }
  return { out };
}

function main() {
  const { out } = parseArgs(process.argv.slice(2));
  const source = fs.readFileSync(path.join(__dirname, SOURCE_UNIT), 'utf8');
  const input = { language: 'Solidity', sources: { [SOURCE_UNIT]: { content: source } }, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input)));

  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  for (const e of output.errors || []) process.stderr.write(`${e.formattedMessage || e.message}\n`);
  if (errors.length > 0) process.exit(1);

  const compiled = output.contracts[SOURCE_UNIT][CONTRACT];
  const artifact = {
    contract: CONTRACT,
    compiler: `solc-${solc.version()}`,
    settings: { evmVersion: SETTINGS.evmVersion, optimizer: SETTINGS.optimizer, metadata: SETTINGS.metadata },
    abi: compiled.abi,
    bytecode: `0x${compiled.evm.bytecode.object}`,
    deployedBytecode: `0x${compiled.evm.deployedBytecode.object}`,
  };
  fs.mkdirSync(out, { recursive: true });
  const target = path.join(out, `${CONTRACT}.json`);
  fs.writeFileSync(target, `${JSON.stringify(artifact, null, 2)}\n`);
  process.stdout.write(`${target}\n`);
}

main();
