#!/usr/bin/env node
// Compile contracts/src/*.sol with the bundled solcjs into <package>/artifacts/<Name>.json:
// the contracts the product runs (the Multicall3 runtime of the state-override reader) into
// chains/artifacts, so the wheel carries them; the test/demo fixtures into devnet/artifacts.
//
//   node scripts/build-contracts.mjs           write artifacts (byte-identical on rebuild)
//   node scripts/build-contracts.mjs --check   compile in memory; exit 1 listing artifacts
//                                              that are missing, differ or have no source
//
// The compiler is the one bundled in the pinned npm `solc` package: nothing is downloaded.

import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const solc = require("solc");

const REPO = join(dirname(fileURLToPath(import.meta.url)), "..");
const SRC_DIR = join(REPO, "contracts", "src");
// Artifact folders (relative to the repository) and the contracts the product needs at run time.
const PRODUCT_DIR = "chains/artifacts";
const DEVNET_DIR = "devnet/artifacts";
const ARTIFACT_DIRS = [PRODUCT_DIR, DEVNET_DIR];
const PRODUCT_CONTRACTS = new Set(["Multicall3"]);
const OPTIMIZER_RUNS = 200;
const EVM_VERSION = "cancun";

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

/** Imports resolve relative to the repository (sources are self-contained today). */
function findImports(path) {
  const full = join(REPO, path);
  return existsSync(full) ? { contents: readFileSync(full, "utf8") } : { error: `not found: ${path}` };
}

/** Compile every source in one standard-JSON run; return Map(artifact file name -> text). */
function compileAll() {
  const files = readdirSync(SRC_DIR)
    .filter((f) => f.endsWith(".sol"))
    .sort();
  const sources = {};
  const digests = {};
  for (const file of files) {
    const key = relative(REPO, join(SRC_DIR, file)).split("\\").join("/");
    const bytes = readFileSync(join(SRC_DIR, file));
    sources[key] = { content: bytes.toString("utf8") };
    digests[key] = createHash("sha256").update(bytes).digest("hex");
  }
  const input = {
    language: "Solidity",
    sources,
    settings: {
      optimizer: { enabled: true, runs: OPTIMIZER_RUNS },
      evmVersion: EVM_VERSION,
      outputSelection: {
        "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] },
      },
    },
  };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const problems = output.errors ?? [];
  for (const p of problems) {
    process.stderr.write(`${p.formattedMessage ?? p.message}\n`);
  }
  if (problems.some((p) => p.severity === "error")) {
    throw new Error("solc reported errors");
  }

  const artifacts = new Map();
  for (const [sourceFile, contracts] of Object.entries(output.contracts ?? {})) {
    for (const [contractName, out] of Object.entries(contracts)) {
      const dir = PRODUCT_CONTRACTS.has(contractName) ? PRODUCT_DIR : DEVNET_DIR;
      const fileName = `${dir}/${contractName}.json`;
      if ([...artifacts.keys()].some((f) => f.endsWith(`/${contractName}.json`))) {
        throw new Error(`two contracts named ${contractName}: artifact names must be unique`);
      }
      artifacts.set(
        fileName,
        stableJson({
          contractName,
          sourceFile,
          sourceSha256: digests[sourceFile],
          solcVersion: solc.version(),
          abi: out.abi,
          bytecode: `0x${out.evm.bytecode.object}`,
          deployedBytecode: `0x${out.evm.deployedBytecode.object}`,
        }),
      );
    }
  }
  return artifacts;
}

/** Committed artifacts, as repository-relative paths. */
function existingArtifacts() {
  return ARTIFACT_DIRS.flatMap((dir) =>
    existsSync(join(REPO, dir))
      ? readdirSync(join(REPO, dir))
          .filter((f) => f.endsWith(".json"))
          .map((f) => `${dir}/${f}`)
      : [],
  );
}

function check(artifacts) {
  const stale = [];
  for (const [fileName, text] of artifacts) {
    const path = join(REPO, fileName);
    if (!existsSync(path)) stale.push(`missing: ${fileName}`);
    else if (readFileSync(path, "utf8") !== text) stale.push(`differs: ${fileName}`);
  }
  for (const fileName of existingArtifacts()) {
    if (!artifacts.has(fileName)) stale.push(`no source: ${fileName}`);
  }
  if (stale.length > 0) {
    process.stderr.write(
      `contract artifacts are out of date (run \`make contracts\`):\n  ${stale.join("\n  ")}\n`,
    );
    return 1;
  }
  process.stdout.write(`contract artifacts up to date (${artifacts.size} contracts)\n`);
  return 0;
}

function write(artifacts) {
  for (const dir of ARTIFACT_DIRS) mkdirSync(join(REPO, dir), { recursive: true });
  for (const [fileName, text] of artifacts) {
    writeFileSync(join(REPO, fileName), text);
  }
  for (const fileName of existingArtifacts()) {
    if (!artifacts.has(fileName)) {
      rmSync(join(REPO, fileName));
      process.stdout.write(`removed orphan artifact ${fileName}\n`);
    }
  }
  process.stdout.write(`wrote ${artifacts.size} artifacts to ${ARTIFACT_DIRS.join(" and ")} (${solc.version()})\n`);
  return 0;
}

const checkOnly = process.argv.slice(2).includes("--check");
try {
  const artifacts = compileAll();
  process.exitCode = checkOnly ? check(artifacts) : write(artifacts);
} catch (err) {
  process.stderr.write(`build-contracts: ${err.message}\n`);
  process.exitCode = 2;
}
