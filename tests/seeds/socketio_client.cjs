// A seed-003 front end in miniature: the real socket.io-client connects to jobtrack with
// an API key, joins the flow's room, and prints each seed event as a JSON line until
// flow:completed arrives. Usage: node socketio_client.cjs URL KEY FLOW_ID
const { io } = require("socket.io-client");

const [url, key, flowId] = process.argv.slice(2);
const EVENTS = ["flow:created", "flow:updated", "flow:job:updated", "flow:completed",
  "flow:progress"];
const socket = io(url, { auth: { token: key }, transports: ["websocket"],
  reconnection: false });
const fail = (why) => {
  process.stderr.write(`${why}\n`);
  process.exit(1);
};
setTimeout(() => fail("timed out"), 20000).unref();
socket.on("connect_error", (err) => fail(`connect_error: ${JSON.stringify(err.data)}`));
socket.on("connect", async () => {
  const joined = await socket.emitWithAck("join", `flow:${flowId}`);
  process.stdout.write(`${JSON.stringify({ joined })}\n`);
});
for (const name of EVENTS) {
  socket.on(name, (payload) => {
    process.stdout.write(`${JSON.stringify({ event: name, payload })}\n`);
    if (name === "flow:completed") {
      socket.disconnect();
      process.exit(0);
    }
  });
}
