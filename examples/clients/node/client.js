// A Confide client in Node.js, written from protos/confide/v1/call.proto and the README:
// it streams a WAV recording (PCM16, mu-law or A-law; 1 or 2 channels) to the gateway
// over mutual TLS, paced like a live call, and prints every event.
//
//   npm ci
//   node client.js --target HOST:PORT --ca ca.pem --cert client.pem --key client.key \
//       [--server-name localhost] [--roles customer,agent] [--fast] [--call-id ID] FILE.wav
//
// Exit status: 0 when the call ends with OK, 1 otherwise (the status is printed).
"use strict";

const fs = require("fs");
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTOS = path.resolve(__dirname, "..", "..", "..", "protos");
const CHUNK_MS = 20; // one chunk per 20 ms of audio, as telephony platforms send it

function parseArgs(argv) {
  const options = { roles: "customer,agent", fast: false, serverName: null, callId: null };
  const rest = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => argv[++i];
    if (arg === "--target") options.target = value();
    else if (arg === "--ca") options.ca = value();
    else if (arg === "--cert") options.cert = value();
    else if (arg === "--key") options.key = value();
    else if (arg === "--server-name") options.serverName = value();
    else if (arg === "--roles") options.roles = value();
    else if (arg === "--call-id") options.callId = value();
    else if (arg === "--fast") options.fast = true;
    else rest.push(arg);
  }
  if (!options.target || !options.ca || !options.cert || !options.key || rest.length !== 1) {
    throw new Error("usage: client.js --target HOST:PORT --ca F --cert F --key F FILE.wav");
  }
  options.file = rest[0];
  return options;
}

// RIFF/WAVE: the "fmt " chunk says the encoding, the "data" chunk holds the frames.
function readWav(file) {
  const bytes = fs.readFileSync(file);
  if (bytes.toString("ascii", 0, 4) !== "RIFF" || bytes.toString("ascii", 8, 12) !== "WAVE") {
    throw new Error(`${file} is not a WAV file`);
  }
  let format = null;
  let data = null;
  for (let offset = 12; offset + 8 <= bytes.length; ) {
    const id = bytes.toString("ascii", offset, offset + 4);
    const size = bytes.readUInt32LE(offset + 4);
    const body = bytes.subarray(offset + 8, offset + 8 + size);
    if (id === "fmt ") {
      format = {
        tag: body.readUInt16LE(0),
        channels: body.readUInt16LE(2),
        sampleRate: body.readUInt32LE(4),
        bits: body.readUInt16LE(14),
      };
    } else if (id === "data") {
      data = body;
    }
    offset += 8 + size + (size % 2);
  }
  if (!format || !data) throw new Error(`${file} has no fmt or data chunk`);
  const encodings = { 1: "AUDIO_ENCODING_LINEAR16", 6: "AUDIO_ENCODING_ALAW", 7: "AUDIO_ENCODING_MULAW" };
  const encoding = encodings[format.tag];
  if (!encoding || (format.tag === 1 && format.bits !== 16)) {
    throw new Error(`${file}: only 16-bit PCM, mu-law or A-law`);
  }
  const frameBytes = (format.bits / 8) * format.channels;
  return { ...format, encoding, frameBytes, data };
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  const wav = readWav(options.file);
  const definition = protoLoader.loadSync("confide/v1/call.proto", {
    includeDirs: [PROTOS],
    keepCase: true,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const confide = grpc.loadPackageDefinition(definition).confide.v1;
  const credentials = grpc.credentials.createSsl(
    fs.readFileSync(options.ca),
    fs.readFileSync(options.key),
    fs.readFileSync(options.cert)
  );
  // The gateway's certificate names the host it was issued for; when the target is an
  // address it does not name, say which name to check.
  const channelOptions = options.serverName
    ? { "grpc.ssl_target_name_override": options.serverName }
    : {};
  const client = new confide.CallService(options.target, credentials, channelOptions);

  // Channel i of every frame is roles[i]: the first role for the first channel.
  const roles = options.roles.split(",").slice(0, wav.channels);
  const call = client.StreamCall();
  const started = Date.now();
  const elapsed = () => ((Date.now() - started) / 1000).toFixed(2).padStart(6);

  call.on("data", (event) => {
    if (event.transcript) {
      const t = event.transcript;
      const kind = t.is_final ? "final  " : "interim";
      console.log(
        `[${elapsed()}s] ${t.role.replace("SPEAKER_ROLE_", "").toLowerCase().padEnd(8)} ` +
          `${kind} ${t.start_seconds.toFixed(2)}-${t.end_seconds.toFixed(2)}  ${t.text}`
      );
    } else if (event.agent_reply && event.agent_reply.is_final) {
      console.log(`[${elapsed()}s] agent reply to turn ${event.agent_reply.turn_index}: ${event.agent_reply.text}`);
    } else if (event.error) {
      console.log(`[${elapsed()}s] error ${event.error.code}: ${event.error.message}`);
    } else if (event.summary) {
      const s = event.summary;
      console.log(`summary: ${s.audio_seconds.toFixed(1)} s of audio, ${s.turns} turns, ${s.final_segments} finals`);
    }
  });
  call.on("status", (status) => {
    const name = Object.keys(grpc.status).find((key) => grpc.status[key] === status.code);
    console.log(`status: ${name}${status.details ? ": " + status.details : ""}`);
    process.exitCode = status.code === grpc.status.OK ? 0 : 1;
  });
  call.on("error", () => {}); // reported by the status handler above

  call.write({
    config: {
      call_id: options.callId || `node-${Date.now()}`,
      audio: {
        encoding: wav.encoding,
        sample_rate_hertz: wav.sampleRate,
        channels: roles.map((role) => ({ role: `SPEAKER_ROLE_${role.toUpperCase()}` })),
        language_code: "en-US",
      },
      interim_results: true,
    },
  });

  // Audio only once the gateway has accepted the call (its headers arrive then): a
  // refused call then ends with its own status, not a write error.
  call.on("metadata", () => {
    const chunkBytes = Math.floor((wav.sampleRate * CHUNK_MS) / 1000) * wav.frameBytes;
    let offset = 0;
    const t0 = Date.now();
    const next = () => {
      if (offset >= wav.data.length) {
        call.write({ end: {} });
        call.end();
        return;
      }
      call.write({ audio: { data: wav.data.subarray(offset, offset + chunkBytes) } });
      offset += chunkBytes;
      const due = t0 + (offset / wav.frameBytes / wav.sampleRate) * 1000;
      setTimeout(next, options.fast ? 0 : Math.max(0, due - Date.now()));
    };
    next();
  });
}

try {
  main();
} catch (error) {
  console.error(`confide node client: ${error.message}`);
  process.exitCode = 2;
}
