// An independent ONVIF client (npm's `onvif`, agsh/onvif) against wallctl's fake camera.
// Usage: node crosscheck.js HOST PORT USER PASSWORD -> one JSON line on stdout.
'use strict';
const { Cam } = require('onvif');

const [host, port, username, password] = process.argv.slice(2);
const out = {};

function step(name, fn) {
  return new Promise((resolve, reject) => {
    fn((err, value) => {
      if (err) {
        reject(Object.assign(new Error(`${name}: ${err.message}`), { step: name }));
      } else {
        resolve(value);
      }
    });
  });
}

const cam = new Cam({ hostname: host, port: Number(port), username, password, timeout: 5000, autoconnect: false });

(async () => {
  try {
    await step('connect', (cb) => cam.connect(cb));
    out.info = await step('getDeviceInformation', (cb) => cam.getDeviceInformation(cb));
    out.profiles = cam.profiles.map((p) => ({
      token: p.$.token,
      name: p.name,
      encoding: p.videoEncoderConfiguration && p.videoEncoderConfiguration.encoding,
      width: p.videoEncoderConfiguration && p.videoEncoderConfiguration.resolution.width,
      height: p.videoEncoderConfiguration && p.videoEncoderConfiguration.resolution.height,
    }));
    const uri = await step('getStreamUri', (cb) => cam.getStreamUri({ protocol: 'RTSP', profileToken: out.profiles[1].token }, cb));
    out.stream_uri = uri.uri;
    const snap = await step('getSnapshotUri', (cb) => cam.getSnapshotUri({ profileToken: out.profiles[0].token }, cb));
    out.snapshot_uri = snap.uri;
    await step('continuousMove', (cb) => cam.continuousMove({ x: 0.25, y: -0.5, zoom: 0 }, cb));
    await step('stop', (cb) => cam.stop({ panTilt: true, zoom: true }, cb));
    const set = await step('setPreset', (cb) => cam.setPreset({ presetName: 'Node' }, cb));
    out.set_preset = set;
    const presets = await step('getPresets', (cb) => cam.getPresets({}, cb));
    out.presets = presets;
    await step('gotoPreset', (cb) => cam.gotoPreset({ preset: '1' }, cb));
    const sub = await step('createPullPointSubscription', (cb) => cam.createPullPointSubscription(cb));
    out.subscription = Boolean(sub && sub.subscriptionReference);
    process.stdout.write(JSON.stringify({ ok: true, ...out }) + '\n');
  } catch (e) {
    process.stdout.write(JSON.stringify({ ok: false, step: e.step || null, error: e.message }) + '\n');
  }
  process.exit(0);
})();
