// Seed 003's front end in miniature: the real socket.io-client connects to jobtrack with an
// API key, waits for the flow named FLOWNAME to be created (flow:created, sent to the
// key's tenant), joins its room flow:{flowId} (for flow:progress), and prints each of the
// seed's events for that flow as one JSON line {event, payload} as it arrives, until the
// flow ends. Exit code 0 once flow:completed arrived; 1 if the flow ended otherwise
// (failed, cancelled), the key was refused or TIMEOUT seconds passed.
//
//   NODE_PATH=.tools/node_modules node examples/flows_across_queues/listener.cjs \
//       URL KEY [FLOWNAME] [TIMEOUT]
const path = require("node:path");
const { io } = require("socket.io-client");

// the terminal statuses, from the generated status contract (never spelled here)
const CONTRACT = require(path.join(__dirname, "..", "..", "contract",
  "jobtrack-status.schema.json"));
const TERMINAL = new Set(CONTRACT.$defs.TerminalJobStatus.enum);
const EVENTS = ["flow:created", "flow:updated", "flow:job:updated", "flow:progress",
  "flow:completed"];

const [url, key, flowname = "ingest-document", timeout = "60"] = process.argv.slice(2);
if (!url || !key) {
  process.stderr.write("usage: node listener.cjs URL KEY [FLOWNAME] [TIMEOUT]\n");
  process.exit(2);
}
const print = (line) => process.stdout.write(`${JSON.stringify(line)}\n`);
const socket = io(url, { auth: { token: key }, transports: ["websocket"] });
const end = (code, why) => {
  if (why) process.stderr.write(`${why}\n`);
  socket.disconnect();
  process.exit(code);
};
setTimeout(() => end(1, `timed out after ${timeout} s`), Number(timeout) * 1000).unref();

let flowId = null;
// refused by the server (a bad key: err.data is the API's error); otherwise (not up yet)
// socket.io-client tries again by itself
socket.on("connect_error", (err) => {
  if (err.data) end(1, `connect_error: ${JSON.stringify(err.data)}`);
});
socket.on("connect", () => print({ listening: flowname }));
for (const name of EVENTS) {
  socket.on(name, async (payload) => {
    if (flowId === null && name === "flow:created" && payload.flowname === flowname) {
      flowId = payload.flowId; // the first flow of that name created since we connected
      print({ event: name, payload });
      print({ joined: await socket.emitWithAck("join", `flow:${flowId}`) });
      return;
    }
    if (flowId === null || payload.flowId !== flowId) return;
    print({ event: name, payload });
    if (name === "flow:completed") end(0);
    // a flow that fails or is cancelled gets no event of its own in the seed
    if (name === "flow:updated" && TERMINAL.has(payload.status)) {
      setTimeout(() => end(1, `flow ${flowId} ended ${payload.status}`), 1000);
    }
  });
}
