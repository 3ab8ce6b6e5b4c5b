// The ringtone of an incoming call, synthesized with WebAudio (no sound file): two tones,
// 440 + 480 Hz, for a second, every three seconds. A browser that has not been clicked yet may
// keep the audio context suspended: then the ring is only seen, not heard.

const TONES = [440, 480];
const EVERY_MS = 3000;
const VOLUME = 0.06;

let context = null;
let timer = null;

function burst() {
  const now = context.currentTime;
  const gain = context.createGain();
  gain.gain.setValueAtTime(0, now);
  gain.gain.linearRampToValueAtTime(VOLUME, now + 0.05);
  gain.gain.setValueAtTime(VOLUME, now + 0.95);
  gain.gain.linearRampToValueAtTime(0, now + 1);
  gain.connect(context.destination);
  for (const frequency of TONES) {
    const osc = context.createOscillator();
    osc.frequency.value = frequency;
    osc.connect(gain);
    osc.start(now);
    osc.stop(now + 1);
  }
}

export function startRinging() {
  stopRinging();
  try {
    context ||= new AudioContext();
    context.resume().catch(() => {});
    burst();
  } catch {
    return; // no audio output: the incoming-call view still shows
  }
  timer = setInterval(burst, EVERY_MS);
}

export function stopRinging() {
  clearInterval(timer);
  timer = null;
}
