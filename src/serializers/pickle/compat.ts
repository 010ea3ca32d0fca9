/**
 * Python 2 names in protocol 0-2 pickles, mapped to the Python 3 names they
 * stand for, as CPython 3's unpickler does (`fix_imports`, the tables of
 * `Lib/_compat_pickle.py`). CPython 3 itself writes the Python 2 names when it
 * pickles with protocol 0-2 (`builtins.set` as `__builtin__.set`,
 * `subprocess.call` as `commands.call`), so without this a `PyGlobal` would
 * name a module that Python 3 no longer has.
 */

const MODULES: Readonly<Record<string, string>> = {
  __builtin__: 'builtins',
  copy_reg: 'copyreg',
  Queue: 'queue',
  SocketServer: 'socketserver',
  ConfigParser: 'configparser',
  repr: 'reprlib',
  tkFileDialog: 'tkinter.filedialog',
  tkSimpleDialog: 'tkinter.simpledialog',
  tkColorChooser: 'tkinter.colorchooser',
  tkCommonDialog: 'tkinter.commondialog',
  Dialog: 'tkinter.dialog',
  Tkdnd: 'tkinter.dnd',
  tkFont: 'tkinter.font',
  tkMessageBox: 'tkinter.messagebox',
  ScrolledText: 'tkinter.scrolledtext',
  Tkconstants: 'tkinter.constants',
  ttk: 'tkinter.ttk',
  Tkinter: 'tkinter',
  markupbase: '_markupbase',
  _winreg: 'winreg',
  thread: '_thread',
  dummy_thread: '_dummy_thread',
  dbhash: 'dbm.bsd',
  dumbdbm: 'dbm.dumb',
  dbm: 'dbm.ndbm',
  gdbm: 'dbm.gnu',
  xmlrpclib: 'xmlrpc.client',
  SimpleXMLRPCServer: 'xmlrpc.server',
  httplib: 'http.client',
  htmlentitydefs: 'html.entities',
  HTMLParser: 'html.parser',
  Cookie: 'http.cookies',
  cookielib: 'http.cookiejar',
  BaseHTTPServer: 'http.server',
  'test.test_support': 'test.support',
  commands: 'subprocess',
  urlparse: 'urllib.parse',
  robotparser: 'urllib.robotparser',
  urllib2: 'urllib.request',
  anydbm: 'dbm',
  _abcoll: 'collections.abc',
  cPickle: 'pickle',
  _elementtree: 'xml.etree.ElementTree',
  FileDialog: 'tkinter.filedialog',
  SimpleDialog: 'tkinter.simpledialog',
  DocXMLRPCServer: 'xmlrpc.server',
  SimpleHTTPServer: 'http.server',
  CGIHTTPServer: 'http.server',
  UserDict: 'collections',
  UserList: 'collections',
  UserString: 'collections',
  whichdb: 'dbm',
  StringIO: 'io',
  cStringIO: 'io',
};

/** `module name` → `[module, name]`. */
const NAMES: ReadonlyMap<string, readonly [string, string]> = new Map(
  (
    [
      ['__builtin__ xrange', 'builtins range'],
      ['__builtin__ reduce', 'functools reduce'],
      ['__builtin__ intern', 'sys intern'],
      ['__builtin__ unichr', 'builtins chr'],
      ['__builtin__ unicode', 'builtins str'],
      ['__builtin__ long', 'builtins int'],
      ['__builtin__ basestring', 'builtins str'],
      ['itertools izip', 'builtins zip'],
      ['itertools imap', 'builtins map'],
      ['itertools ifilter', 'builtins filter'],
      ['itertools ifilterfalse', 'itertools filterfalse'],
      ['itertools izip_longest', 'itertools zip_longest'],
      ['UserDict IterableUserDict', 'collections UserDict'],
      ['UserDict UserDict', 'collections UserDict'],
      ['UserList UserList', 'collections UserList'],
      ['UserString UserString', 'collections UserString'],
      ['whichdb whichdb', 'dbm whichdb'],
      ['_socket fromfd', 'socket fromfd'],
      ['socket _socketobject', 'socket SocketType'],
      ['_multiprocessing Connection', 'multiprocessing.connection Connection'],
      ['multiprocessing.process Process', 'multiprocessing.context Process'],
      ['multiprocessing.forking Popen', 'multiprocessing.popen_fork Popen'],
      ['multiprocessing AuthenticationError', 'multiprocessing.context AuthenticationError'],
      ['multiprocessing BufferTooShort', 'multiprocessing.context BufferTooShort'],
      ['multiprocessing ProcessError', 'multiprocessing.context ProcessError'],
      ['multiprocessing TimeoutError', 'multiprocessing.context TimeoutError'],
      ['urllib ContentTooShortError', 'urllib.error ContentTooShortError'],
      ['urllib getproxies', 'urllib.request getproxies'],
      ['urllib pathname2url', 'urllib.request pathname2url'],
      ['urllib quote_plus', 'urllib.parse quote_plus'],
      ['urllib quote', 'urllib.parse quote'],
      ['urllib unquote_plus', 'urllib.parse unquote_plus'],
      ['urllib unquote', 'urllib.parse unquote'],
      ['urllib url2pathname', 'urllib.request url2pathname'],
      ['urllib urlcleanup', 'urllib.request urlcleanup'],
      ['urllib urlencode', 'urllib.parse urlencode'],
      ['urllib urlopen', 'urllib.request urlopen'],
      ['urllib urlretrieve', 'urllib.request urlretrieve'],
      ['urllib2 HTTPError', 'urllib.error HTTPError'],
      ['urllib2 URLError', 'urllib.error URLError'],
      ['exceptions StandardError', 'builtins Exception'],
    ] as const
  ).map(([from, to]) => [from, to.split(' ') as [string, string]]),
);

/** The Python 3 name for a global named in a protocol 0-2 pickle. */
export function python3Name(module: string, name: string): readonly [string, string] {
  const renamed = NAMES.get(`${module} ${name}`);
  if (renamed !== undefined) return renamed;
  // Python 2's exceptions module became part of builtins.
  if (module === 'exceptions') return ['builtins', name];
  const mod = Object.hasOwn(MODULES, module) ? MODULES[module] : undefined;
  return [mod ?? module, name];
}
