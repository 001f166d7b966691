#!/usr/bin/env node
// Compile protocol contracts that npm ships as Solidity sources only, with the exact compiler
// their pragma asks for, into contracts/vendor/<package>/<Name>.json.
//
//   node scripts/build-vendor-contracts.mjs           write artifacts (byte-identical on rebuild)
//   node scripts/build-vendor-contracts.mjs --check   compile in memory; exit 1 listing artifacts
//                                                     that are missing, differ or have no source
//
// Today: Morpho Blue (npm @morpho-org/morpho-blue, `pragma solidity 0.8.19` exact) and the mocks
// it ships, compiled with the solc 0.8.19 pinned through the npm alias `solc-0.8.19`. Nothing is
// downloaded: the compilers are the ones bundled in the pinned npm packages.
//
// Aave v3 is not built here: @aave/core-v3 ships compiled artifacts (with link references),
// which daemon/devnet/vendor.py links and deploys as they are.

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const REPO = join(dirname(fileURLToPath(import.meta.url)), "..");
const NODE_MODULES = join(REPO, "node_modules");
const VENDOR_DIR = join(REPO, "contracts", "vendor");

// Morpho Blue's own build profile uses via-IR; the plain pipeline gives the same semantics and
// compiles ~3x faster in solcjs (the freshness test recompiles on every run).
const BUILDS = [
  {
    dir: "morpho-blue",
    packageName: "@morpho-org/morpho-blue",
    compiler: "solc-0.8.19",
    optimizerRuns: 999999,
    evmVersion: "paris",
    sources: [
      "src/Morpho.sol",
      "src/mocks/IrmMock.sol",
      "src/mocks/OracleMock.sol",
      "src/mocks/ERC20Mock.sol",
    ],
    contracts: ["Morpho", "IrmMock", "OracleMock", "ERC20Mock"],
  },
];

/** JSON with recursively sorted object keys, 2-space indent and a trailing newline. */
function stableJson(value) {
  const sortKeys = (v) => {
    if (Array.isArray(v)) return v.map(sortKeys);
    if (v !== null && typeof v === "object") {
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((k) => [k, sortKeys(v[k])]),
      );
    }
    return v;
  };
  return `${JSON.stringify(sortKeys(value), null, 2)}\n`;
}

function packageDir(name) {
  const dir = join(NODE_MODULES, name);
  if (!existsSync(join(dir, "package.json"))) {
    throw new Error(`npm package ${name} is not installed: run \`make install\``);
  }
  return dir;
}

/** Compile one build; return Map(artifact file name -> text). */
function compileBuild(build) {
  const solc = require(join(packageDir(build.compiler), "index.js"));
  const pkgDir = packageDir(build.packageName);
  const pkg = JSON.parse(readFileSync(join(pkgDir, "package.json"), "utf8"));
  const digests = {};
  const read = (path) => {
    const bytes = readFileSync(join(NODE_MODULES, path));
    digests[path] = createHash("sha256").update(bytes).digest("hex");
    return bytes.toString("utf8");
  };
  const sources = {};
  for (const file of build.sources) {
    const key = `${build.packageName}/${file}`;
    sources[key] = { content: read(key) };
  }
  const findImports = (path) =>
    existsSync(join(NODE_MODULES, path)) ? { contents: read(path) } : { error: `not found: ${path}` };
  const input = {
    language: "Solidity",
    sources,
    settings: {
      optimizer: { enabled: true, runs: build.optimizerRuns },
      evmVersion: build.evmVersion,
      outputSelection: {
        "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] },
      },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const problems = output.errors ?? [];
  for (const p of problems) {
    if (p.severity === "error") process.stderr.write(`${p.formattedMessage ?? p.message}\n`);
  }
  if (problems.some((p) => p.severity === "error")) {
    throw new Error(`solc reported errors compiling ${build.packageName}`);
  }
  const artifacts = new Map();
  for (const [sourceFile, contracts] of Object.entries(output.contracts ?? {})) {
    for (const [contractName, out] of Object.entries(contracts)) {
      if (!build.contracts.includes(contractName)) continue;
      const fileName = `${contractName}.json`;
      if (artifacts.has(fileName)) throw new Error(`two contracts named ${contractName}`);
      // The source digests cover every file solc read for this build (imports included).
      artifacts.set(fileName, { contractName, sourceFile, out });
    }
  }
  const texts = new Map();
  for (const [fileName, { contractName, sourceFile, out }] of artifacts) {
    texts.set(
      fileName,
      stableJson({
        contractName,
        sourceFile,
        package: `${build.packageName}@${pkg.version}`,
        sourcesSha256: digests,
        solcVersion: solc.version(),
        settings: { optimizerRuns: build.optimizerRuns, evmVersion: build.evmVersion },
        abi: out.abi,
        bytecode: `0x${out.evm.bytecode.object}`,
        deployedBytecode: `0x${out.evm.deployedBytecode.object}`,
      }),
    );
  }
  for (const name of build.contracts) {
    if (!texts.has(`${name}.json`)) throw new Error(`${build.packageName}: no contract ${name}`);
  }
  return texts;
}

function existing(dir) {
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".json")) : [];
}

function check(build, texts) {
  const dir = join(VENDOR_DIR, build.dir);
  const stale = [];
  for (const [fileName, text] of texts) {
    const path = join(dir, fileName);
    if (!existsSync(path)) stale.push(`missing: contracts/vendor/${build.dir}/${fileName}`);
    else if (readFileSync(path, "utf8") !== text) stale.push(`differs: contracts/vendor/${build.dir}/${fileName}`);
  }
  for (const fileName of existing(dir)) {
    if (!texts.has(fileName)) stale.push(`no source: contracts/vendor/${build.dir}/${fileName}`);
  }
  return stale;
}

function write(build, texts) {
  const dir = join(VENDOR_DIR, build.dir);
  mkdirSync(dir, { recursive: true });
  for (const [fileName, text] of texts) writeFileSync(join(dir, fileName), text);
  for (const fileName of existing(dir)) {
    if (!texts.has(fileName)) rmSync(join(dir, fileName));
  }
  process.stdout.write(`wrote ${texts.size} artifacts to contracts/vendor/${build.dir}\n`);
}

const checkOnly = process.argv.slice(2).includes("--check");
try {
  const stale = [];
  for (const build of BUILDS) {
    const texts = compileBuild(build);
    if (checkOnly) stale.push(...check(build, texts));
    else write(build, texts);
  }
  if (checkOnly && stale.length > 0) {
    process.stderr.write(
      `vendor contract artifacts are out of date (run \`make contracts\`):\n  ${stale.join("\n  ")}\n`,
    );
    process.exitCode = 1;
  } else if (checkOnly) {
    process.stdout.write("vendor contract artifacts up to date\n");
  }
} catch (err) {
  process.stderr.write(`build-vendor-contracts: ${err.message}\n`);
  process.exitCode = 2;
}
