/**
 * PNG output of the histogram: the SVG image rendered by resvg (`@resvg/resvg-js`, an optional
 * dependency: prebuilt binaries from the npm registry, no install script), with one system font
 * for its text. Both are checked before any input is read.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { CliError } from './errors.js';

/** Font files the PNG's text is drawn with, by preference, and their family names. */
export const FONT_FILES: readonly (readonly [file: string, family: string])[] = [
  ['DejaVuSans.ttf', 'DejaVu Sans'],
  ['LiberationSans-Regular.ttf', 'Liberation Sans'],
  ['NotoSans-Regular.ttf', 'Noto Sans'],
  ['FreeSans.ttf', 'FreeSans'],
  ['Arial.ttf', 'Arial'],
  ['arial.ttf', 'Arial'],
  ['Helvetica.ttc', 'Helvetica'],
];

/** Where fonts are looked for: the usual font folders of Linux, macOS and Windows. */
export function fontDirectories(): string[] {
  const home = homedir();
  return [
    '/usr/share/fonts',
    '/usr/local/share/fonts',
    join(home, '.local/share/fonts'),
    join(home, '.fonts'),
    '/System/Library/Fonts',
    '/System/Library/Fonts/Supplemental',
    '/Library/Fonts',
    join(process.env.WINDIR ?? 'C:\\Windows', 'Fonts'),
  ];
}

/** The first font of {@link FONT_FILES} found in {@link fontDirectories} (or one folder below, as Debian keeps them). */
export function findFont(directories: readonly string[] = fontDirectories()): { path: string; family: string } | undefined {
  const sub = ['', 'truetype/dejavu', 'truetype/liberation', 'truetype/liberation2', 'truetype/noto', 'truetype/freefont', 'TTF', 'dejavu', 'liberation', 'noto'];
  for (const [file, family] of FONT_FILES) {
    for (const dir of directories) {
      for (const s of sub) {
        const path = join(dir, s, file);
        if (existsSync(path)) return { path, family };
      }
    }
  }
  return undefined;
}

/** Turns an SVG image into PNG bytes. */
export type PngRenderer = (svg: string) => Uint8Array;

/**
 * Loads the renderer and finds a font (in `fontDirs`), for writing `path`.
 *
 * @throws {CliError} naming the path: when `@resvg/resvg-js` is not installed (or its prebuilt
 *   binary is not there for this platform), or no font is found.
 */
export async function loadPngRenderer(path: string, fontDirs: readonly string[] = fontDirectories()): Promise<PngRenderer> {
  let Resvg: typeof import('@resvg/resvg-js').Resvg;
  try {
    ({ Resvg } = await import('@resvg/resvg-js'));
  } catch (error) {
    const missing = (error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' || /Cannot find (package|module) '@resvg\/resvg-js'/.test(String(error));
    throw new CliError(
      path,
      `cannot write the histogram as PNG: ${missing ? 'the optional package @resvg/resvg-js is not installed' : `@resvg/resvg-js does not load here (${(error as Error).message.split('\n', 1)[0]})`} (npm install @resvg/resvg-js), or write an .svg`,
    );
  }
  const font = findFont(fontDirs);
  if (font === undefined) {
    throw new CliError(
      path,
      `cannot write the histogram as PNG: no font to draw its text with (one of ${FONT_FILES.map(([f]) => f).join(', ')}; on Debian: apt-get install fonts-dejavu-core), or write an .svg`,
    );
  }
  return (svg) =>
    new Resvg(svg, {
      background: 'white',
      fitTo: { mode: 'original' },
      font: { fontFiles: [font.path], loadSystemFonts: false, defaultFontFamily: font.family, sansSerifFamily: font.family },
    })
      .render()
      .asPng();
}
