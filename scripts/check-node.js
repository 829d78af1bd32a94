// Fails the test command loudly when npm did not put the pinned Node first on PATH.
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(
    `ml-scheduler: tests need Node >= 22.18 (the pinned devDependency "node" 24.x), but this is Node ${process.versions.node}. Run \`npm ci\` so npm scripts use the pinned Node.`,
  );
  process.exit(1);
}
