// The machine sensors the policies read (node/sensors.ts): the parsers on sample outputs of ps, tasklist
// and nvidia-smi as those tools print them, and the adapter on this machine (Linux, no nvidia-smi).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseCsvLine, parseNvidiaSmi, parseProcessList, readProcessesAndGpus } from '../node/sensors.js';

const LINUX_PS = `systemd
kthreadd
rcu_gp
kworker/0:0H-events_highpri
systemd-journal
Xorg
pipewire
steam
steamwebhelper
steamwebhelper
wineserver
eldenring.exe
Cyberpunk2077.e
node
  bash
`;

const MAC_PS = `/sbin/launchd
/usr/libexec/logd
/System/Library/CoreServices/Finder.app/Contents/MacOS/Finder
/Applications/Steam.app/Contents/MacOS/steam_osx
/Applications/Swarm.app/Contents/MacOS/Swarm Helper (GPU)
node
`;

const TASKLIST_CSV = [
  '',
  '"System Idle Process","0","Services","0","8 K"',
  '"System","4","Services","0","2,468 K"',
  '"explorer.exe","6012","Console","1","154,320 K"',
  '"steam.exe","7420","Console","1","61,204 K"',
  '"eldenring.exe","13376","Console","1","4,812,556 K"',
  '"svchost.exe","1180","Services","0","12,336 K"',
  '"svchost.exe","1204","Services","0","9,876 K"',
  '"My ""Quoted"" Tool.exe","2222","Console","1","1,024 K"',
  '',
].join('\r\n');

const UUID_A = 'GPU-5f1c0b6e-7d2e-3c0a-9a8b-1f2e3d4c5b6a';
const UUID_B = 'GPU-9e8d7c6b-5a49-3827-1605-f4e3d2c1b0a9';

describe('parseCsvLine', () => {
  it('splits quoted fields that hold commas and doubled quotes', () => {
    expect(parseCsvLine('"explorer.exe","6012","Console","1","154,320 K"')).toEqual(['explorer.exe', '6012', 'Console', '1', '154,320 K']);
    expect(parseCsvLine('"a ""b"" c",d,,"e"')).toEqual(['a "b" c', 'd', '', 'e']);
  });
});

describe('parseProcessList', () => {
  it('Linux `ps -A -o comm=`: one name a line, trimmed, without duplicates, kernel threads as they are', () => {
    const names = parseProcessList(LINUX_PS, 'linux');
    expect(names).toContain('eldenring.exe');
    expect(names).toContain('Cyberpunk2077.e');
    expect(names).toContain('kworker/0:0H-events_highpri');
    expect(names).toContain('bash');
    expect(names.filter((n) => n === 'steamwebhelper')).toHaveLength(1);
    expect(names).toHaveLength(14);
  });

  it('macOS `ps -A -o comm=`: whole paths become executable names', () => {
    expect(parseProcessList(MAC_PS, 'darwin')).toEqual(['launchd', 'logd', 'Finder', 'steam_osx', 'Swarm Helper (GPU)', 'node']);
  });

  it('Windows `tasklist /fo csv /nh`: the image name of each row, quotes and commas handled', () => {
    expect(parseProcessList(TASKLIST_CSV, 'win32')).toEqual(['System Idle Process', 'System', 'explorer.exe', 'steam.exe', 'eldenring.exe', 'svchost.exe', 'My "Quoted" Tool.exe']);
  });

  it('Windows: the "no tasks" notice and empty output give no names', () => {
    expect(parseProcessList('INFO: No tasks are running which match the specified criteria.\r\n', 'win32')).toEqual([]);
    expect(parseProcessList('', 'linux')).toEqual([]);
  });
});

describe('parseNvidiaSmi', () => {
  it('reads index, name, temperature and power; "[N/A]" and "[Not Supported]" stay unknown', () => {
    const csv = '0, NVIDIA GeForce RTX 4090, 64, 287.45\n1, NVIDIA GeForce GTX 1080 Ti, 41, [N/A]\n2, Tesla K80, [Not Supported], [Not Supported]\n';
    expect(parseNvidiaSmi(csv)).toEqual([
      { index: 0, name: 'NVIDIA GeForce RTX 4090', temperatureC: 64, powerW: 287.45 },
      { index: 1, name: 'NVIDIA GeForce GTX 1080 Ti', temperatureC: 41 },
      { index: 2, name: 'Tesla K80' },
    ]);
  });

  it('with uuids, places compute processes on their GPU (base names; unreadable names skipped)', () => {
    const gpus = `0, ${UUID_A}, NVIDIA GeForce RTX 3080, 71, 305.12\r\n1, ${UUID_B}, NVIDIA GeForce RTX 3060, 55, 98.70\r\n`;
    const apps = `${UUID_A}, /usr/bin/python3\n${UUID_B}, C:\\Program Files\\ELDEN RING\\Game\\eldenring.exe\n${UUID_A}, [Insufficient Permissions]\n${UUID_A}, /usr/bin/python3\n`;
    expect(parseNvidiaSmi(gpus, apps)).toEqual([
      { index: 0, name: 'NVIDIA GeForce RTX 3080', temperatureC: 71, powerW: 305.12, processes: ['python3'] },
      { index: 1, name: 'NVIDIA GeForce RTX 3060', temperatureC: 55, powerW: 98.7, processes: ['eldenring.exe'] },
    ]);
  });

  it('without uuids, processes are placed only when there is a single GPU', () => {
    const apps = `${UUID_A}, /usr/bin/python3\n`;
    expect(parseNvidiaSmi('0, NVIDIA RTX A4000, 50, 80.00\n', apps)[0].processes).toEqual(['python3']);
    const two = parseNvidiaSmi('0, NVIDIA RTX A4000, 50, 80.00\n1, NVIDIA RTX A4000, 52, 81.00\n', apps);
    expect(two.map((g) => g.processes)).toEqual([undefined, undefined]);
  });

  it('a name with a comma, no apps, and output it does not understand', () => {
    expect(parseNvidiaSmi('0, NVIDIA Foo, Rev. 2, 48, 60.5')).toEqual([{ index: 0, name: 'NVIDIA Foo, Rev. 2', temperatureC: 48, powerW: 60.5 }]);
    expect(parseNvidiaSmi('0, NVIDIA GeForce RTX 4070, 45, 30.1', '')[0].processes).toEqual([]);
    expect(parseNvidiaSmi(`0, ${UUID_A}, NVIDIA GeForce RTX 4070, 45, 30.1`, '')[0].processes).toEqual([]);
    expect(parseNvidiaSmi("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.")).toEqual([]);
    expect(parseNvidiaSmi('')).toEqual([]);
  });
});

describe('readProcessesAndGpus on this machine', () => {
  it('lists running processes, this one among them, and no GPUs without nvidia-smi', async () => {
    const started = Date.now();
    const { processes, gpus } = await readProcessesAndGpus();
    expect(processes.length).toBeGreaterThan(1);
    expect(processes).toContain(readFileSync('/proc/self/comm', 'utf8').trim());
    expect(processes).toContain('node');
    expect(gpus).toEqual([]);
    expect(Date.now() - started).toBeLessThan(7000);
    // Again: nvidia-smi is now known to be absent, and nothing throws.
    await expect(readProcessesAndGpus()).resolves.toMatchObject({ gpus: [] });
  });
});
