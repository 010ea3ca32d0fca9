/**
 * The one path through which tests and benchmarks reach internals (see
 * ARCHITECTURE.md, "Boundaries"). Nothing here is part of the package's API:
 * the package's `exports` map does not expose this file, and names may change
 * in any release.
 */
export { readiness, type HasReadiness } from './core/readiness.js';
export { publish } from './connection/diagnostics.js';
export { FrameDecoder, type FrameHandler } from './connection/frame-decoder.js';
export { FrameWriter, writeHeader } from './connection/frame-writer.js';
export { resolveSerializer } from './serializers/resolve.js';
export { PickleDecoder, pickleSerializer, dumps as pickleDumps, loads as pickleLoads } from './serializers/pickle/index.js';
export { MAX_DEPTH as PICKLE_ENCODER_MAX_DEPTH, PickleEncoder } from './serializers/pickle/encoder.js';
export { OP as PICKLE_OP } from './serializers/pickle/opcodes.js';
export { runInCall, type CallContext } from './managers/context.js';
export { hashKey, pyEquals } from './managers/sync/keys.js';
export { pyRepr } from './managers/sync/repr.js';
export { syncTypeids } from './managers/sync/typeids.js';
export { fromTaggedJson, parseAddress, parseCommandLine, toTaggedJson } from './cli/index.js';
export { Receiver, ReadState, ReceiveKind } from './connection/receiver.js';
export { WaitQueue, type Waiter } from './core/queue.js';
export { cancelOptions, ConnectionSettings, queueLength, timeoutOr } from './core/validate.js';
export { transportFamily } from './listener/options.js';
