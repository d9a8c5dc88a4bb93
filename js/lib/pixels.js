// Pure pixel helpers (no DOM): safe to unit-test in node.

/**
 * View the bytes of a DataView / ArrayBuffer / typed array as a Uint8Array, honouring
 * byteOffset and byteLength (anywidget hands buffers over as DataViews into a larger buffer).
 * @param {DataView | ArrayBuffer | ArrayBufferView} data
 * @returns {Uint8Array}
 */
export function asBytes(data) {
  if (data instanceof Uint8Array) return data;
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (data && ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError("expected binary data (DataView, ArrayBuffer or typed array)");
}

/**
 * Expand a row-major grey image (one byte per pixel) to RGBA bytes for ImageData.
 * @param {Uint8Array} gray
 * @param {number} width
 * @param {number} height
 * @returns {Uint8ClampedArray} width*height*4 bytes, alpha 255
 */
export function grayToRgba(gray, width, height) {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 0 || height < 0) {
    throw new RangeError(`invalid image size ${width}x${height}`);
  }
  const n = width * height;
  if (gray.length !== n) {
    throw new RangeError(`expected ${n} bytes for a ${height}x${width} image, got ${gray.length}`);
  }
  const rgba = new Uint8ClampedArray(n * 4);
  for (let i = 0, j = 0; i < n; i++, j += 4) {
    const v = gray[i];
    rgba[j] = v;
    rgba[j + 1] = v;
    rgba[j + 2] = v;
    rgba[j + 3] = 255;
  }
  return rgba;
}

/**
 * Sum of all bytes (exact for anything under 2**53 / 255 bytes).
 * @param {Uint8Array} bytes
 * @returns {number}
 */
export function byteSum(bytes) {
  let sum = 0;
  for (let i = 0; i < bytes.length; i++) sum += bytes[i];
  return sum;
}
