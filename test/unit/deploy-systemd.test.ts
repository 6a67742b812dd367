// config/systemd/: the two units parse as systemd unit files (a strict parser here: known
// sections and directives only, values of the right form) and say what deploying GRID needs:
// KillMode=mixed so a drain is not cut short by SIGTERM reaching the tasks, TimeoutStopSec longer
// than the drain, no restart loop on a refused registration (RestartPreventExitStatus names
// ExitCode.REFUSED), and the hardening keys. Where systemd-analyze is installed, `systemd-analyze
// verify` must find nothing to say about them either.

import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadExecutorConfig } from '../../src/config/executor.js';
import { AlreadyExistsError, executorExitCode, ExitCode, PermissionDeniedError, UnauthenticatedError, UnavailableError, ValidationError } from '../../src/errors.js';
import { STOP_AFTER_GRACE_MS } from '../../src/executor/agent.js';

const DIR = fileURLToPath(new URL('../../config/systemd/', import.meta.url));

/** Directives this parser accepts, by section: the systemd.unit/service/exec/kill ones GRID's units may use. */
const DIRECTIVES: Record<string, readonly string[]> = {
  Unit: ['Description', 'Documentation', 'After', 'Before', 'Wants', 'Requires', 'BindsTo', 'PartOf', 'Conflicts', 'StartLimitIntervalSec', 'StartLimitBurst', 'ConditionPathExists', 'AssertPathExists'],
  Service: [
    'Type', 'User', 'Group', 'ExecStart', 'ExecStartPre', 'ExecStartPost', 'ExecReload', 'ExecStop', 'Environment', 'EnvironmentFile', 'WorkingDirectory',
    'KillMode', 'KillSignal', 'TimeoutStopSec', 'TimeoutStartSec', 'Restart', 'RestartSec', 'RestartPreventExitStatus', 'SuccessExitStatus',
    'StateDirectory', 'StateDirectoryMode', 'LogsDirectory', 'RuntimeDirectory', 'ConfigurationDirectory', 'UMask', 'NoNewPrivileges', 'ProtectSystem',
    'ProtectHome', 'PrivateTmp', 'PrivateDevices', 'ProtectKernelTunables', 'ProtectKernelModules', 'ProtectKernelLogs', 'ProtectControlGroups',
    'ProtectClock', 'ProtectHostname', 'RestrictSUIDSGID', 'RestrictRealtime', 'RestrictNamespaces', 'RestrictAddressFamilies', 'LockPersonality',
    'SystemCallArchitectures', 'SystemCallFilter', 'CapabilityBoundingSet', 'AmbientCapabilities', 'LimitNOFILE', 'ReadWritePaths', 'ReadOnlyPaths',
    'MemoryDenyWriteExecute', 'LoadCredential', 'DynamicUser',
  ],
  Install: ['WantedBy', 'RequiredBy', 'Alias', 'Also'],
};
/** Directives that may be given more than once (each adds to a list). */
const REPEATABLE = new Set(['Environment', 'EnvironmentFile', 'After', 'Before', 'Wants', 'Requires', 'ExecStartPre', 'ExecStartPost', 'ReadWritePaths', 'ReadOnlyPaths', 'WantedBy']);
const BOOLEANS = ['NoNewPrivileges', 'PrivateTmp', 'PrivateDevices', 'ProtectKernelTunables', 'ProtectKernelModules', 'ProtectKernelLogs', 'ProtectControlGroups', 'ProtectClock', 'ProtectHostname', 'RestrictSUIDSGID', 'RestrictRealtime', 'LockPersonality', 'MemoryDenyWriteExecute', 'DynamicUser'];
const ENUMS: Record<string, readonly string[]> = {
  Type: ['simple', 'exec', 'forking', 'oneshot', 'dbus', 'notify', 'notify-reload', 'idle'],
  KillMode: ['control-group', 'mixed', 'process', 'none'],
  Restart: ['no', 'on-success', 'on-failure', 'on-abnormal', 'on-watchdog', 'on-abort', 'always'],
  ProtectSystem: ['yes', 'no', 'full', 'strict'],
  ProtectHome: ['yes', 'no', 'read-only', 'tmpfs'],
};

type Unit = Record<string, Record<string, string[]>>;

/** Parses a unit file strictly: every problem is thrown with its line number. */
export function parseUnit(text: string, name = 'unit'): Unit {
  const unit: Unit = {};
  let section: string | undefined;
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const at = `${name}:${i + 1}`;
    let line = lines[i]!.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) line = `${line.slice(0, -1)} ${lines[++i]!.trim()}`; // continuation
    const header = /^\[([A-Za-z]+)\]$/.exec(line);
    if (header) {
      section = header[1]!;
      if (!DIRECTIVES[section]) throw new Error(`${at}: unknown section [${section}]`);
      if (unit[section]) throw new Error(`${at}: section [${section}] twice`);
      unit[section] = {};
      continue;
    }
    const kv = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (!kv) throw new Error(`${at}: neither a section, a comment nor Key=Value: ${line}`);
    if (!section) throw new Error(`${at}: ${kv[1]} before any section`);
    const [, key, value] = kv as unknown as [string, string, string];
    if (!DIRECTIVES[section]!.includes(key)) throw new Error(`${at}: ${key} is not a directive of [${section}] this test knows`);
    const list = (unit[section]![key] ??= []);
    if (list.length > 0 && !REPEATABLE.has(key)) throw new Error(`${at}: ${key} given twice`);
    list.push(value);
    checkValue(key, value, at);
  }
  return unit;
}

function checkValue(key: string, value: string, at: string): void {
  const fail = (what: string): never => {
    throw new Error(`${at}: ${key}=${value}: ${what}`);
  };
  if (BOOLEANS.includes(key) && !['yes', 'no', 'true', 'false', '1', '0', 'on', 'off'].includes(value)) fail('not a boolean');
  if (ENUMS[key] && !ENUMS[key].includes(value)) fail(`not one of ${ENUMS[key].join(', ')}`);
  if (['TimeoutStopSec', 'TimeoutStartSec', 'RestartSec', 'StartLimitIntervalSec'].includes(key) && timeSpan(value) === undefined) fail('not a time span');
  if (key === 'RestartPreventExitStatus' || key === 'SuccessExitStatus') {
    for (const t of value.split(/\s+/)) if (!/^(\d{1,3}|SIG[A-Z0-9]+)$/.test(t) || Number(t) > 255) fail(`${t} is neither an exit status (0-255) nor a signal`);
  }
  if (/^(ExecStart|ExecStop|ExecReload|ExecStartPre|ExecStartPost)$/.test(key) && !/^[-@:+!]*\//.test(value)) fail('the program must be an absolute path');
  if (/^(StateDirectory|LogsDirectory|RuntimeDirectory|ConfigurationDirectory)$/.test(key) && !/^[a-z0-9][-a-z0-9_.]*(\/[-a-z0-9_.]+)*$/.test(value)) fail('must be a relative path without ".."');
  if (/DirectoryMode$|^UMask$/.test(key) && !/^0?[0-7]{3,4}$/.test(value)) fail('not an octal mode');
  if ((key === 'WorkingDirectory' || key === 'EnvironmentFile') && !/^-?[/~]/.test(value)) fail('must be an absolute path');
  if (key === 'Environment' && !/^("?[A-Za-z_][A-Za-z0-9_]*=[^"]*"?\s*)+$/.test(value)) fail('not NAME=value assignments');
  if (key === 'StartLimitBurst' && !/^\d+$/.test(value)) fail('not a number');
}

/** A systemd time span in seconds: "90", "90s", "1min 30s", "2m", "500ms". */
export function timeSpan(text: string): number | undefined {
  const units: Record<string, number> = { ms: 0.001, msec: 0.001, s: 1, sec: 1, second: 1, seconds: 1, m: 60, min: 60, minute: 60, minutes: 60, h: 3600, hr: 3600, hour: 3600, hours: 3600 };
  if (text === 'infinity') return Infinity;
  let total = 0;
  const parts = text.trim().split(/\s+/);
  for (const p of parts) {
    const m = /^(\d+(?:\.\d+)?)([a-z]*)$/.exec(p);
    if (!m) return undefined;
    const unit = m[2] === '' ? 1 : units[m[2]!];
    if (unit === undefined) return undefined;
    total += Number(m[1]) * unit;
  }
  return total;
}

const units = Object.fromEntries(readdirSync(DIR).filter((f) => f.endsWith('.service')).map((f) => [f, parseUnit(readFileSync(join(DIR, f), 'utf8'), f)]));
const one = (unit: string, section: string, key: string): string | undefined => {
  const v = units[unit]?.[section]?.[key];
  return v?.[v.length - 1];
};

describe('config/systemd: the units', () => {
  it('are grid-controller.service and grid-executor.service, and parse', () => {
    expect(Object.keys(units).sort()).toEqual(['grid-controller.service', 'grid-executor.service']);
  });

  it('the parser refuses what systemd would ignore or refuse: a misspelt key, a bad value, a key outside a section', () => {
    expect(() => parseUnit('[Service]\nKillMode=mixd\n')).toThrow('unit:2: KillMode=mixd: not one of control-group, mixed, process, none');
    expect(() => parseUnit('[Service]\nNoNewPrivilege=yes\n')).toThrow('unit:2: NoNewPrivilege is not a directive of [Service] this test knows');
    expect(() => parseUnit('[Service]\nTimeoutStopSec=a minute\n')).toThrow('not a time span');
    expect(() => parseUnit('[Service]\nRestartPreventExitStatus=300\n')).toThrow('300 is neither an exit status');
    expect(() => parseUnit('ExecStart=/bin/true\n')).toThrow('before any section');
    expect(() => parseUnit('[Servce]\n')).toThrow('unknown section [Servce]');
    expect(() => parseUnit('[Service]\nExecStart=node x.js\n')).toThrow('the program must be an absolute path');
    expect(timeSpan('1min 30s')).toBe(90);
    expect(timeSpan('90')).toBe(90);
  });

  it.each(Object.keys(units))('%s: KillMode=mixed (SIGTERM to the main process alone), restarted on failure, hardened, with a state directory', (name) => {
    expect(one(name, 'Service', 'KillMode')).toBe('mixed');
    expect(one(name, 'Service', 'KillSignal')).toBe('SIGTERM');
    expect(one(name, 'Service', 'Restart')).toBe('on-failure');
    expect(one(name, 'Service', 'NoNewPrivileges')).toBe('yes');
    expect(['full', 'strict']).toContain(one(name, 'Service', 'ProtectSystem'));
    expect(one(name, 'Service', 'StateDirectory')).toBe(name.replace(/\.service$/, ''));
    expect(one(name, 'Service', 'User')).toMatch(/^grid/);
    expect(one(name, 'Install', 'WantedBy')).toBe('multi-user.target');
    // A configuration error is not mended by restarting either.
    expect(one(name, 'Service', 'RestartPreventExitStatus')!.split(' ')).toContain(String(ExitCode.USAGE));
  });

  it('grid-executor.service: no restart loop when the controller refuses it (exit 77, ExitCode.REFUSED)', () => {
    expect(ExitCode.REFUSED).toBe(77);
    expect(one('grid-executor.service', 'Service', 'RestartPreventExitStatus')!.split(' ')).toContain(String(ExitCode.REFUSED));
    // What the executor exits with: a refusal by the controller is REFUSED, the rest as before.
    expect(executorExitCode(new UnauthenticatedError('the registration token was not accepted'))).toBe(ExitCode.REFUSED);
    expect(executorExitCode(new PermissionDeniedError('--replace needs an admin token'))).toBe(ExitCode.REFUSED);
    expect(executorExitCode(new AlreadyExistsError('executor', 'web-1'))).toBe(ExitCode.REFUSED);
    expect(executorExitCode(new ValidationError('name: bad'))).toBe(ExitCode.USAGE);
    expect(executorExitCode(new UnavailableError('cannot reach the controller'))).toBe(ExitCode.UNAVAILABLE);
  });

  it('grid-executor.service: TimeoutStopSec is longer than the drain (shutdown_grace_seconds, then stopping, publishing and reporting)', () => {
    const grace = loadExecutorConfig({ env: {}, cwd: DIR }).shutdown_grace_seconds;
    expect(grace).toBe(30);
    expect(timeSpan(one('grid-executor.service', 'Service', 'TimeoutStopSec')!)!).toBeGreaterThan(grace + STOP_AFTER_GRACE_MS / 1000);
  });

  it('grid-controller.service: TimeoutStopSec is longer than its close (5 s for requests in flight on each door, then the embedded servers)', () => {
    expect(timeSpan(one('grid-controller.service', 'Service', 'TimeoutStopSec')!)!).toBeGreaterThanOrEqual(20);
  });

  it('grid-executor.service registers on the first start (the exit code passed on by sh -e), then starts, keeping its state in the state directory', () => {
    const exec = one('grid-executor.service', 'Service', 'ExecStart')!;
    expect(exec).toMatch(/^\/bin\/sh -ec '/);
    const state = (units['grid-executor.service']!['Service']!['Environment'] ?? []).find((e) => e.startsWith('GRID_STATE_FILE='))!.split('=')[1]!;
    expect(state).toBe(`/var/lib/${one('grid-executor.service', 'Service', 'StateDirectory')}/executor-state.json`);
    expect(exec).toContain(`if [ ! -f ${state} ]; then`);
    expect(exec.indexOf(' register ')).toBeLessThan(exec.indexOf('exec /usr/bin/node /opt/grid/dist/cmd/executor.js start '));
    expect(exec).toContain('GRID_REGISTRATION_TOKEN_FILE=');
  });

  it('grid-executor.service: its start script passes a refused registration\'s 77 on to systemd, and registers only once', () => {
    const dir = mkdtempSync(join(tmpdir(), 'grid-unit-'));
    try {
      // The unit's own script, with the executor replaced by a stand-in that logs its command and
      // exits with $REGISTER_EXIT for register, and the state file moved into a temp folder.
      const fake = join(dir, 'executor.sh');
      writeFileSync(fake, '#!/bin/sh\necho "$1" >> "$(dirname "$0")/calls"\n[ "$1" = register ] && exit "${REGISTER_EXIT:-0}"\nexit 0\n', { mode: 0o755 });
      const exec = one('grid-executor.service', 'Service', 'ExecStart')!;
      const script = /^\/bin\/sh -ec '(.*)'$/.exec(exec)![1]!.replaceAll('/usr/bin/node /opt/grid/dist/cmd/executor.js', fake).replaceAll('/var/lib/grid-executor', dir);
      const run = (env: Record<string, string>) => spawnSync('/bin/sh', ['-ec', script], { env: { ...process.env, ...env }, encoding: 'utf8' });
      const calls = () => readFileSync(join(dir, 'calls'), 'utf8').trim().split('\n');
      expect(run({ REGISTER_EXIT: String(ExitCode.REFUSED) }).status).toBe(ExitCode.REFUSED);
      expect(calls()).toEqual(['register']); // start never ran
      expect(run({}).status).toBe(0);
      expect(calls()).toEqual(['register', 'register', 'start']);
      writeFileSync(join(dir, 'executor-state.json'), '{}');
      expect(run({ REGISTER_EXIT: String(ExitCode.REFUSED) }).status).toBe(0); // registered: register is not run again
      expect(calls()).toEqual(['register', 'register', 'start', 'start']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('grid-controller.service keeps data_dir in its state directory', () => {
    expect(units['grid-controller.service']!['Service']!['Environment']).toContain(`GRID_DATA_DIR=/var/lib/${one('grid-controller.service', 'Service', 'StateDirectory')}`);
  });

  const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' }).status === 0;
  it.skipIf(!analyze)('systemd-analyze verify says nothing about either unit (runs where systemd-analyze is installed)', () => {
    const files = Object.keys(units).map((f) => join(DIR, f));
    const r = spawnSync('systemd-analyze', ['verify', '--man=no', '--generators=no', ...files], { encoding: 'utf8' });
    // Only what it says of these files counts, not of the machine it runs on.
    const about = `${r.stdout}${r.stderr}`.split('\n').filter((l) => files.some((f) => l.includes(f)));
    expect(about).toEqual([]);
  });
});
