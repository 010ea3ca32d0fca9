/** Framing and the Connection class. */
export { bufferedMessages, Connection, DEFAULT_CLOSE_TIMEOUT, limitFrames } from './connection.js';
export type { CloseOptions, ConnectionMode, ConnectionOptions, RecvOptions, RecvValueOptions } from './connection.js';
export { FrameDecoder } from './frame-decoder.js';
export type { FrameHandler } from './frame-decoder.js';
