"""What an alert's content shows beyond what its source states (docs/signals.md, "Inferred").

Each rule below names the behaviour it encodes and cites the field it read; what it finds is added
to the model's behaviours with `"inferred": true`. Only entity fields are read (command lines,
process names, user agents, URLs, volumes): never titles or descriptions, which are the rule
author's words, not the event's.
"""

import re
import urllib.parse

from threats.importers.signal import direction

from . import signal_model
from .priority import attack
from .priority.behaviours import CLOUD_CREDENTIALS, POLICIES, behaviour_of_technique

EXPLOIT_TOOLS = re.compile(r"sqlmap|metasploit|w3af|havij|commix|hydra|\bburp", re.I)
SCANNER_TOOLS = re.compile(r"nikto|nmap|masscan|zgrab|nuclei|acunetix|nessus|openvas|wpscan|dirbuster|gobuster|"
                           r"\bzap\b|feroxbuster|ffuf", re.I)
# Attack payloads in a requested URL (decoded or percent-encoded): the request itself is the attack.
URL_PAYLOADS = [
    # UNION SELECT with what an injection adds (a column list, FROM, NULL, a comment): the bare words are prose.
    ("SQL injection", r"union(\s|\+|%20|/\*.*?\*/)+(all(\s|\+|%20)+)?select\b[^&]*?(,|%2c|\bfrom\b|\bnull\b|@@|--|#|"
                      r"/\*|\bconcat)|'\s*(or|and)\s*'?\d+'?\s*=\s*'?\d|"
                      r"(sleep|benchmark|pg_sleep)\s*\(|information_schema|xp_cmdshell|%27(\+|%20)*(or|and)(\+|%20)"),
    ("cross-site scripting", r"<\s*script|%3cscript|javascript:|onerror\s*=|onload\s*=|%3csvg|<svg[^>]*on\w+="),
    ("path traversal", r"\.\./\.\./|%2e%2e(/|%2f)|\.\.%2f|/etc/passwd|/etc/shadow|boot\.ini|win\.ini"),
    ("command injection", r"(;|\||%7c|`|\$\()\s*(wget|curl|bash|sh|nc|id|whoami|cat)\b|\$\{jndi:|%24%7bjndi"),
]
URL_PAYLOAD_RES = [(name, re.compile(pattern, re.I)) for name, pattern in URL_PAYLOADS]
DEV_SOCKET = re.compile(r"/dev/(tcp|udp)/", re.I)
SHELL_ON_SOCKET = re.compile(r"<>|>&|<&|0>&1|\s-i\b|\bexec\s+\d+\s*<>")
REG_DATA = re.compile(r'\breg(\.exe)?\s+add\b.*?\s/d\s+("?)([^"\s]*)\2', re.I)
MIN_ENCODED = 16  # shorter than this, a value is a flag or a number, not an encoded payload
SQL_WORDS = re.compile(r"\b(select|union|insert|update|delete|drop|where|from|order by)\b", re.I)
# What a query needs beyond keywords: a quote, comment, operator, list or statement. "union select" alone is
# prose (a search for the phrase); an injection closes the query or lists columns ("1 union select 1,2").
SQL_SYNTAX = re.compile(r"['\"`;=(),@*<>|&\\]|--|/\*|#|\b0x[0-9a-f]|\bselect\b.+\bfrom\b", re.I)
TRAVERSAL_TO_FILE = re.compile(r"(\.\./|\.\.\\){2,}.*(etc/passwd|etc/shadow|win\.ini|boot\.ini)", re.I)
UNION_SELECT = re.compile(r"\bunion(\s|/\*.*?\*/)+(all\s+)?select\b.*\bfrom\b", re.I)  # on the decoded URL
# A UNION query's answer this large carries rows: an error or an empty result is a few kilobytes.
DUMP_BYTES = 64_000
CRAWLERS = re.compile(r"googlebot|bingbot|duckduckbot|applebot|yandexbot|baiduspider", re.I)
# Files ransomware leaves: notes telling the victim how to pay, and the extensions it appends.
RANSOM_ARTIFACTS = re.compile(
    r"(readme|how|restore|recover|decrypt)[-_ !]*(to[-_ ]*)?(decrypt|restore|recover)|_readme\.txt$|!!!.*readme|"
    # a note telling the victim how to get the files back: Restore-My-Files.txt, DECRYPT-FILES.html
    r"(restore|recover|decrypt|unlock|get[-_ ]?back|return)[-_ !]*([a-z0-9]+[-_ !]+){0,3}(your|my|all)?[-_ !]*files?"
    r"\.(txt|html?|hta|rtf)$|"
    r"\.(locked|encrypted|crypt|crypted|enc|lockbit|ryk|conti|akira|blackcat|royal|play|basta|hive|lockfile|"
    r"wannacry|wncry)$", re.I)
WEB_SCRIPT = re.compile(r"\.(php\d?|phtml|phar|jspx?|aspx?|ashx|asmx|cfm|cgi)$", re.I)
SERVED_CODE = re.compile(r"(/var/www/|/srv/www/|htdocs|wwwroot|public_html|inetpub).*\.(js|php\d?|phtml|jspx?|aspx?|html?)$",
                         re.I)
# Cloud instance metadata endpoints (AWS/Azure/GCP/OpenStack, AWS IPv6, GCP's name, Alibaba).
METADATA_SERVICE = re.compile(r"169\.254\.169\.254|\[?fd00:ec2::254\]?|metadata\.google\.internal|100\.100\.100\.200",
                              re.I)
UPLOADED_SCRIPT = re.compile(r"/uploads?/(.*/)?[^/]+\.(php\d?|phtml|phar|jspx?|aspx?|ashx|cfm)$", re.I)
# A parameter value that is a shell command: one of the commands an operator types first, at the start
# of the value or after a separator (`c=id`, `cmd=cd /tmp;wget …`).
SHELL_COMMAND = re.compile(r"(^|[=;|&`]|\$\()\s*(wget|curl|sh|bash|id|whoami|uname|cat\s+/etc/|nc|ncat|"
                           r"chmod|python3?|perl|powershell|cmd(\.exe)?\s+/c)\b", re.I)
WEB_ROOTS = re.compile(r"/var/www/|/srv/www/|htdocs|wwwroot|public_html|wp-content|/uploads?/|webapps|inetpub", re.I)
# Where a program is started again at boot or logon (ATT&CK T1547.001, T1053.003, T1543.002, T1098.004,
# T1037.004), and sudoers (T1548.003).
AUTOSTART = [
    ("registry run key", re.compile(r"\\currentversion\\(run|runonce|runservices)\b|\\winlogon\\(userinit|shell)", re.I)),
    ("startup folder", re.compile(r"\\start menu\\programs\\startup\\", re.I)),
    ("cron", re.compile(r"^/etc/cron|^/var/spool/cron|/etc/crontab$", re.I)),
    ("systemd unit", re.compile(r"^/(etc|lib|usr/lib)/systemd/system/.+\.(service|timer)$", re.I)),
    ("ssh authorized keys", re.compile(r"/\.ssh/authorized_keys2?$", re.I)),
    ("init script", re.compile(r"^/etc/(rc\.local|init\.d/)", re.I)),
    ("sudoers", re.compile(r"^/etc/sudoers(\.d/|$)", re.I)),
]
SHELL_ESCAPE = re.compile(
    r"-exec\s+/?\S*\b(ba|da|z|k)?sh\b|\b(vim?|less|more|man|ftp|gdb)\b.*!\s*/?\S*\bsh\b|"
    r"\bawk\b.*system\(|\bpython[0-9.]*\b.*\bpty\.spawn|\bperl\b.*exec\s*\W*/bin/\w*sh|"
    r"/bin/(ba)?sh\s+-p\b|\bnmap\b.*--interactive|\btar\b.*--checkpoint-action=exec", re.I)
DOWNLOAD_ACTIONS = {"filedownloaded", "filesyncdownloadedfull"}  # Microsoft 365 audit operations
BULK_DOWNLOADS = 100  # files in one alert: a library taken, not a document read
# Where a service binary is put by a tool that runs it from another host: PsExec's own service, an
# admin share, or straight into the Windows folder (Impacket's psexec and smbexec): T1021.002 + T1569.002.
REMOTE_SERVICE = re.compile(r"psexesvc|\\\\[^\\]+\\(admin|[a-z])\$\\|^\"?%systemroot%\\[^\\]+\.exe\"?$|"
                            r"^\"?c:\\windows\\[^\\]+\.exe\"?$", re.I)
NEW_SERVICE = re.compile(r"\b(7045|4697)\b|service", re.I)  # the persistence a new service shows
# Service accounts by the usual naming conventions (svc_reporting, sa-backup, sql-svc, a gMSA's name$).
SERVICE_ACCOUNT = re.compile(r"^(svc|srv|sa|service)[-_.]|[-_.](svc|service)$|\$$", re.I)
RDP_LOGON = 10  # Windows logon type RemoteInteractive
# A command whose output goes to this host's own admin share, for the caller to read over SMB: the shape
# of Impacket's wmiexec (cmd.exe /Q /c ... 1> \\127.0.0.1\ADMIN$\__<time> 2>&1) and smbexec.
SHARE_OUTPUT = re.compile(r"1?>\s*\\\\(127\.0\.0\.1|localhost)\\(admin|c)\$\\", re.I)
SHELLS = re.compile(r"(^|\\)(cmd|powershell|pwsh)(\.exe)?$", re.I)
# A hidden folder (a name starting with a dot) inside a world-writable temporary folder or a web
# server's writable tree: where an intruder stages tools (T1564.001); packages and services do not run
# from there. ACME's .well-known and a checkout's .git are the web tree's ordinary hidden folders.
HIDDEN_STAGING = re.compile(r"^/(tmp|var/tmp|dev/shm|var/www|srv/www|srv/http)/(.*/)?"
                            r"\.(?!well-known(/|$)|git(/|$))[^/.][^/]*(/|$)")
OFFICE_APPS = {"winword.exe", "excel.exe", "powerpnt.exe", "outlook.exe", "onenote.exe", "mspub.exe", "visio.exe"}
OFFICE_CHILDREN = {"mshta.exe", "powershell.exe", "pwsh.exe", "cmd.exe", "wscript.exe", "cscript.exe", "rundll32.exe",
                   "regsvr32.exe", "certutil.exe", "bitsadmin.exe", "msbuild.exe", "installutil.exe", "wmic.exe"}
SCRIPT_HOSTS = {"wscript.exe", "cscript.exe", "mshta.exe"}
USER_SCRIPT = re.compile(r"\\users\\[^\\]+\\(downloads|desktop|documents|appdata)\\.*\.(js|jse|vbs|vbe|wsf|hta)\b|"
                         r"\\(temp|tmp)\\.*\.(js|jse|vbs|vbe|wsf|hta)\b", re.I)
WEB_ACCOUNTS = re.compile(r"^(www-data|apache|apache2|nginx|httpd|wwwrun|http|lighttpd|tomcat\d*|"
                          r"iis apppool\\.+|.*\\iusr)$", re.I)
HIDDEN_AUTOSTART = re.compile(r"/(LaunchAgents|LaunchDaemons|systemd/system|systemd/user|cron\.d|crontabs)/\.[^/]+$")
SUDOERS_WRITE = re.compile(r"(>>?|\btee\b(\s+-a)?)\s*/etc/sudoers(\.d/\S+)?\b|\bNOPASSWD\s*:\s*ALL\b.*\bsudoers", re.I)
KERNEL_LOAD = re.compile(r"\b(insmod|modprobe|kmod\s+load)\b.*?\s(/\S+\.ko)\b", re.I)
BARE_FETCH = re.compile(r"\b(curl|wget|certutil|bitsadmin|invoke-webrequest|iwr|invoke-restmethod|irm|"
                        r"start-bitstransfer|downloadstring|downloadfile)\b.*\bhttps?://\d{1,3}(\.\d{1,3}){3}\b", re.I)
# PowerShell started with its window hidden and the execution policy lifted (or an encoded command):
# how droppers and hands-on-keyboard intruders run scripts nobody should see.
HIDDEN_WINDOW = re.compile(r"\s[-/]w(indow(style)?)?\s+(hidden|1)\b", re.I)
POLICY_LIFTED = re.compile(r"\s[-/](ep|exec(utionpolicy)?)\s+(bypass|unrestricted)\b|\s[-/]e(nc(odedcommand)?)?\s+[a-z0-9+/=]{16,}",
                           re.I)
# A shell whose input and output are wired to a network socket: bash's /dev/tcp redirections, netcat's
# -e, a fifo piped through netcat, socat's exec, a scripting language's socket duplicated onto stdin.
REVERSE_SHELL = re.compile(r"(>&|&>|<>)\s*/dev/(tcp|udp)/|/dev/(tcp|udp)/\S+\s+0>&1|"
                           r"\b(nc|ncat|netcat)\b[^|;&]*\s-(e|c)\s*\S*\b(ba|da|z|k)?sh\b|\bmkfifo\b.*\|\s*(nc|ncat|netcat)\b|"
                           r"\bsocat\b.*\bexec:|\bsocket\b.*\bdup2\b|\bfsockopen\s*\(.*\b(exec|shell_exec|system|proc_open)\b",
                           re.I)
# PowerShell running what it downloads: Invoke-Expression of the fetched text.
EXPRESSION_RUN = re.compile(r"\b(iex|invoke-expression)\b", re.I)
PIPED_TO_SHELL = re.compile(r"\|\s*(sudo\s+(-\S+\s+)*)?(\S*/)?(ba|da|z|k)?sh\b")  # curl ... | sh: run as it arrives
UPLOAD = re.compile(r"\s(-T|--upload-file|-F|--form|-d|--data(-binary)?)\s", re.I)  # sending, not fetching
REPEATED_FAILURES = 8  # the frequency of Wazuh's stock brute-force rules (e.g. 5712, 5763, 60204)
LOGIN_PATHS = re.compile(r"login|signin|sign-in|/auth|logon|/session|password|/token", re.I)
RULE_CONFIDENCE = {"high": 0.85, "medium": 0.7, "low": 0.5}
EXFIL_BYTES = 100_000_000  # outbound volume that makes a compromised or anomalous host's traffic an exfiltration
EXFIL_ALONE_BYTES = 1_000_000_000  # outbound volume that is an exfiltration by itself
# Switching off or blinding a security control, in a command line or the registry value it sets.
# vssadmin resizing shadow storage: ransomware shrinks it to evict the copies; a working size keeps them.
SHADOW_RESIZE = re.compile(r"\bvssadmin(?:\.exe)?\b.*\bresize\s+shadowstorage\b.*?/maxsize=\s*"
                           r"(unbounded|(\d+(?:\.\d+)?)\s*(%|kb|mb|gb|tb|eb|pb)?)", re.I)
KEPT_PERCENT, KEPT_BYTES = 5, 10 * 1024 ** 3
UNITS = {"kb": 1024, "mb": 1024 ** 2, "gb": 1024 ** 3, "tb": 1024 ** 4, "pb": 1024 ** 5, "eb": 1024 ** 6}
SWITCHED_ON = re.compile(r"-Disable\w+[\s:=\"']+(\$false|false|0)\b", re.I)
TAMPERING = re.compile(
    # A Disable* setting switched off ($false, 0) turns the protection on: that is not tampering.
    r"(DisableAntiSpyware|DisableRealtimeMonitoring|DisableBehaviou?rMonitoring|DisableIOAVProtection|"
    r"DisableScriptScanning)(?![\s:=\"']+(\$false|false|0)\b)|TamperProtection\W+0|"
    r"Set-MpPreference\s+.*-Disable\w*\s+(\$true|1)|"
    r"(Add|Set)-MpPreference\s+.*-Exclusion|sc(\.exe)?\s+(stop|delete|config)\s+(WinDefend|Sense|wscsvc|SecurityHealthService)|"
    r"systemctl\s+(stop|disable|mask)\s+(auditd|falcon-sensor|wazuh-agent|osqueryd|elastic-agent)|auditctl\s+-e\s*0|"
    r"setenforce\s+0|netsh\s+(adv)?firewall\s+set\s+\w+\s+state\s+off|Uninstall-WindowsFeature\s+.*Defender",
    re.I)


# Characters that change how a name reads without showing themselves: bidirectional overrides and
# isolates, zero-width spaces and joiners, the word joiner, the byte-order mark. No file, process or
# account name needs one; a name holding one is built to be mistaken for another.
DECEPTIVE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
ACCOUNT_NAMES = ("target", "actor")
# Names a file must not have where it runs: Linux kernel threads have no executable at all, and
# Windows' core processes run only from their system folder (T1036.005, Match Legitimate Name or Location).
KERNEL_THREADS = re.compile(r"^(kthreadd|kworker\S*|ksoftirqd\S*|kswapd\d*|kauditd|khugepaged|ksmd|kdevtmpfs|"
                            r"rcu_(sched|bh|preempt)|watchdogd)$")
WINDOWS_CORE = {name: "\\windows\\system32\\" for name in (
    "svchost.exe", "lsass.exe", "csrss.exe", "smss.exe", "services.exe", "winlogon.exe", "wininit.exe",
    "spoolsv.exe", "taskhostw.exe", "lsm.exe")} | {"explorer.exe": "\\windows\\"}


def infer(threat, model):
    """Add what the content shows to `model` (the threat's signal, copied)."""
    found = model["behaviours"]
    model["command_techniques"] = _commands(threat, model, found)
    _user_agent(threat, found)
    model["url_payloads"] = _urls(threat, found)
    _injection_answered(threat, model, found)
    _traversal_served(threat, model, found)
    _web_shell_used(threat, model, found)
    _metadata_fetched(threat, model, found)
    _named_techniques(threat, model, found)
    _automated_login(threat, found)
    _refused_logins(threat, model, found)
    _repeated_failures(model, found)
    _bulk_download(model, found)
    _credentials_for_another(model, found)
    _tampering(threat, model, found)
    _shell_escape(threat, found)
    _sudoers_edit(threat, found)
    _files(model, found)
    _outbound_volume(threat, model, found)
    _masquerading(threat, model, found)
    model["remote_service"] = _remote_service(threat, found)
    _service_account_desktop(threat, model, found)
    _wmi_execution(threat, model, found)
    _hidden_staging(threat, model, found)
    _reverse_shell(threat, found)
    _fetch_from_address(threat, found)
    _kernel_module(threat, found)
    _office_child(threat, model, found)
    _web_account_writes(model, found)
    _hidden_autostart(model, found)
    _host_namespaces(threat, found)
    _hidden_powershell(threat, model, found)
    return model


GENERIC_COMMAND_HIT = re.compile(r"^T\d{4}(\.\d{3})? \(rule ")  # what `_commands` writes


def add(found, name, field, detail, tagged=False):
    """`tagged`: known only from a rule's ATT&CK tag, i.e. what the rule looks for, not proof it happened."""
    if name not in POLICIES:
        return
    known = next((b for b in found if b["name"] == name), None)
    # Seen in the event outranks a rule's tag; a named rule's reading outranks the generic
    # command-line rule's (its technique stays in `command_techniques`).
    if known is not None and not (known.get("tagged") and not tagged) and not \
            (GENERIC_COMMAND_HIT.match(str(known.get("detail"))) and not GENERIC_COMMAND_HIT.match(str(detail))):
        return
    if known is not None:
        found.remove(known)
    found.append({"name": name, "field": field, "detail": str(detail)[:200], "inferred": True,
                  **({"tagged": True} if tagged else {})})


def _commands(threat, model, found):
    """Rule `command_line_technique`: ttprism's command-line rules over the process and command
    line; a high- or medium-confidence hit shows the technique's behaviour."""
    lines = [(f"observables.{name}", line) for name in ("command_line", "process") for line in signal_model.values(threat, name)]
    if model.get("process") and not signal_model.values(threat, "process"):
        lines.append((model["fields"].get("process", "process"), model["process"][: signal_model.MAX_TEXT]))
    hits = []
    for field, line in lines:
        matched = attack.techniques_in_commands([line])
        strong = [m for m in matched if m[2] == "high"]
        for technique_id, rule_id, confidence, _text in strong or [m for m in matched if m[2] == "medium"]:
            behaviour = behaviour_of_technique(technique_id)
            if behaviour == "security_tool_disabled" and switches_protection_on(threat, [line]):
                continue  # the rule read a -Disable* parameter name; given $false it switches the protection on
            # A medium-confidence rule names a technique only when no high-confidence one explains the line.
            hits.append({"technique_id": technique_id, "rule": rule_id, "field": f"signal.{field}",
                         "confidence": RULE_CONFIDENCE.get(confidence, 0.5)})
            if behaviour and confidence == "high":
                add(found, behaviour, field, f"{technique_id} (rule {rule_id})")
    return hits


def _user_agent(threat, found):
    """Rule `attack_tool_user_agent`: an exploitation tool is a web attack, a scanner is a scan."""
    agent, field = signal_model.text(threat, "user_agent"), "observables.user_agent"
    if EXPLOIT_TOOLS.search(agent):
        add(found, "web_attack", field, f"exploitation tool {EXPLOIT_TOOLS.search(agent).group(0)}")
    elif SCANNER_TOOLS.search(agent):
        add(found, "vulnerability_scan", field, f"scanner {SCANNER_TOOLS.search(agent).group(0)}")


def _urls(threat, found):
    """Rule `attack_payload_in_url`: the requested URL carries an attack payload. Returns the kinds of
    payload found (the policy reads them: a coarse rule's match with none is words, not an attack)."""
    for name in ("urls", "endpoint"):
        for url in signal_model.values(threat, name):
            decoded = urllib.parse.unquote_plus(url)  # as the server reads it
            for label, pattern in URL_PAYLOAD_RES:
                if pattern.search(url) or pattern.search(decoded):
                    add(found, "web_attack", f"observables.{name}", label)
                    return [label]
    return []


def socket_without_shell(threat):
    """Command lines that open /dev/tcp or /dev/udp, none of them wiring a shell's input and output to
    the socket (`>&`, `<&`, `<>`, `0>&1`, `-i`): `echo > /dev/tcp/db/5432` probes a port."""
    lines = [line for line in signal_model.values(threat, "command_line") if DEV_SOCKET.search(line)]
    return bool(lines) and not any(SHELL_ON_SOCKET.search(line) for line in lines)


def short_registry_data(threat):
    """`reg add ... /d VALUE` whose every value is too short to be Base64 payload (a DWORD, a flag)."""
    values = [m.group(3) for line in signal_model.values(threat, "command_line") for m in REG_DATA.finditer(line)]
    return bool(values) and all(len(v) < MIN_ENCODED for v in values)


def sql_words_only(threat):
    """The requested URL's parameter values hold SQL keywords only as words of text ('union jack
    select cushions'): no quote, comment, parenthesis, operator or statement a query needs."""
    words = False
    for name in ("urls", "endpoint"):
        for url in signal_model.values(threat, name):
            query = urllib.parse.urlsplit(url[:8_192]).query
            for _key, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
                if SQL_SYNTAX.search(value):
                    return False
                words = words or bool(SQL_WORDS.search(value))
    return words


# The commands web-server rules look for in a URI ("Suspicious Chmod Usage in URI") and what a shell
# needs to run one: a separator, a substitution, a redirection, or the command followed by arguments.
URI_COMMANDS = re.compile(r"(?<![a-z0-9])(chmod|chown|wget|curl|uname|whoami|netcat|ncat|nc|bash|sh|cmd\.exe|"
                          r"powershell|passwd|id)(?![a-z0-9])", re.I)
SHELL_SYNTAX = re.compile(r"[;|`$<>\n]|&&|\$\(")
COMMAND_ARGUMENTS = re.compile(r"(?<![a-z0-9])(chmod|chown|wget|curl|uname|whoami|netcat|ncat|nc|bash|sh|cmd\.exe|"
                               r"powershell|passwd|id)[\s+]+[-/\w.]", re.I)


def command_words_only(threat):
    """The requested URLs name a command only as a word of a page's name or a search
    ('/cli/permission-denied-run-chmod-x'): no separator, substitution or redirection, and the
    command is never followed by arguments."""
    named = False
    for name in ("urls", "endpoint"):
        for url in signal_model.values(threat, name):
            decoded = urllib.parse.unquote_plus(url[:8_192])
            if SHELL_SYNTAX.search(decoded) or COMMAND_ARGUMENTS.search(decoded):
                return False
            named = named or bool(URI_COMMANDS.search(decoded))
    return named


def _answered_urls(threat, model):
    """(observable name, decoded URL, status) of each requested URL, when the server answered 2xx: what
    the rules below read (a 4xx or 5xx means the request did nothing they claim)."""
    status = model["measures"].get("http_status")
    if not (isinstance(status, int) and 200 <= status < 300):
        return
    for name in ("urls", "endpoint"):
        for url in signal_model.values(threat, name):
            yield name, urllib.parse.unquote_plus(url[:8_192]), status


def _traversal_served(threat, model, found):
    """Rule `traversal_served`: a path traversal to a system file (/etc/passwd, /etc/shadow, win.ini,
    boot.ini) answered 2xx: the server read the file and sent it back."""
    for name, url, status in _answered_urls(threat, model):
        if TRAVERSAL_TO_FILE.search(url):
            add(found, "exploit_success", f"observables.{name}", f"a system file read by path traversal, "
                                                                f"answered {status}")
            return


def _metadata_fetched(threat, model, found):
    """Rule `metadata_fetched`: a request whose parameters point the server at the cloud instance
    metadata service (169.254.169.254, metadata.google.internal, …), answered 2xx: the SSRF worked and
    the instance's credentials went back to the caller (T1552.005)."""
    for name, url, status in _answered_urls(threat, model):
        if METADATA_SERVICE.search(url.partition("?")[2]):
            add(found, "exploit_success", f"observables.{name}", f"the instance metadata service fetched, {status}")
            return


def _web_shell_used(threat, model, found):
    """Rule `web_shell_used`: a script in an upload folder (`/uploads/…/x.php`: uploads are files,
    never code) asked to run a shell command in its parameters, and answered 2xx: a web shell at work."""
    for name, url, status in _answered_urls(threat, model):
        path, _mark, query = url.partition("?")
        if UPLOADED_SCRIPT.search(path) and SHELL_COMMAND.search(query):
            add(found, "web_shell", f"observables.{name}", f"a script in an upload folder ran a command, {status}")
            return


def _injection_answered(threat, model, found):
    """Rule `injection_returned_data`: a UNION ... SELECT ... FROM in the requested URL, answered 2xx
    with a body of DUMP_BYTES or more: the query ran and its rows came back."""
    status, size = model["measures"].get("http_status"), model["measures"].get("response_bytes")
    if not (isinstance(status, int) and 200 <= status < 300 and isinstance(size, (int, float)) and size >= DUMP_BYTES):
        return
    for name in ("urls", "endpoint"):
        if any(UNION_SELECT.search(urllib.parse.unquote_plus(url)) for url in signal_model.values(threat, name)):
            add(found, "exploit_success", model["fields"].get("measures.response_bytes", "measures.response_bytes"),
                f"a UNION query answered {status} with {size:,.0f} bytes")
            return


def _named_techniques(threat, model, found):
    """Rule `technique_named_by_a_curated_rule`: an Elastic, Suricata or generic rule's own ATT&CK
    mapping says what it looks for (a coarse Wazuh tag only when the alert states nothing else). That
    names the alert's family, never a floor: the rule's severity says how sure its author is. Wazuh's rule-family mappings are too coarse for this (every
    logon failure is tagged T1531), so they only name techniques (agents/priority)."""
    if model.get("trust") == "coarse" and found:
        return  # a coarse tag only names the family of an alert whose structure says nothing else
    for index, technique_id in enumerate(threat.mitre_hints[:20] if isinstance(threat.mitre_hints, list) else []):
        behaviour = behaviour_of_technique(technique_id)
        if behaviour == "security_tool_disabled" and switches_protection_on(threat):
            continue  # the command the rule matched turns the protection on: its tag is contradicted
        if behaviour == "kerberoasting" and machine_account_ticket(model):
            continue
        if behaviour:
            add(found, behaviour, f"mitre_hints[{index}]", f"{technique_id} named by the source's rule", tagged=True)


def machine_account_ticket(model):
    """One service ticket requested by a computer account (its name ends with $): a server
    authenticating to the service it uses. Kerberoasting is a person's account asking for many."""
    actor = str(model["account"].get("actor") or "").strip()
    count = model["measures"].get("events")
    return actor.endswith("$") and (not isinstance(count, (int, float)) or count <= 1)


def recovery_kept(threat):
    """The size a `vssadmin resize shadowstorage` command keeps when it is a working one (UNBOUNDED,
    at least KEPT_PERCENT of the volume or KEPT_BYTES), else "": resized, no copy evicted."""
    kept = ""
    for line in signal_model.values(threat, "command_line"):
        if re.search(r"\bdelete\b|shadowcopy", line, re.I):
            return ""  # copies deleted in the same command: nothing here is a plain resize
        for match in SHADOW_RESIZE.finditer(line):  # every resize in the line must keep a working size
            size, number, unit = match.group(1), match.group(2), (match.group(3) or "").lower()
            if not (size.lower() == "unbounded" or (unit == "%" and float(number) >= KEPT_PERCENT) or (
                    unit != "%" and float(number) * UNITS.get(unit, 1) >= KEPT_BYTES)):
                return ""
            kept = kept or size
    return kept


def switches_protection_on(threat, lines=None):
    """A command line setting -Disable* parameters to $false or 0 (and nothing else that disables):
    rules matching the parameter names read it as tampering; it turns the protection on."""
    lines = signal_model.values(threat, "command_line") if lines is None else lines
    return any(SWITCHED_ON.search(line) for line in lines) and not any(TAMPERING.search(line) for line in lines)


def _tampering(threat, model, found):
    """Rule `security_tool_tampering`: a command line or registry value that switches off or blinds a
    security control (Defender's policies and exclusions, EDR/audit services, SELinux, the firewall)."""
    places = [(f"observables.{name}", value) for name in ("command_line",) for value in signal_model.values(threat, name)]
    if model.get("registry"):
        places.append((model["fields"].get("registry", "registry"), model["registry"][: signal_model.MAX_TEXT]))
    for field, value in places:
        match = TAMPERING.search(value)
        if match:
            add(found, "security_tool_disabled", field, match.group(0)[:80])
            return


def _files(model, found):
    """Rules on the path a file or registry alert names (file-integrity monitoring, EDR file events):
    `ransom_artifacts`, `web_shell_dropped`, `autostart_location`."""
    for key in ("file", "registry"):
        path, field = str(model.get(key) or "")[:2000], model["fields"].get(key, key)
        if not path:
            continue
        if RANSOM_ARTIFACTS.search(path):
            add(found, "ransomware", field, "an encrypted file or a ransom note")
        elif key == "file" and WEB_SCRIPT.search(path) and WEB_ROOTS.search(path) and not _only_changed(model):
            add(found, "web_shell", field, "a script in a web-served folder")
        else:
            location = next((name for name, pattern in AUTOSTART if pattern.search(path)), None)
            if location:
                add(found, "privilege_escalation" if location == "sudoers" else "persistence", field, location)


def _only_changed(model):
    """The file existed and was changed, not created (FIM `modified`, ECS event.type change): a web
    shell is dropped, an application's own script is updated (who updated it is `web_account_writes`)."""
    types = set(model.get("type") or [])
    return "change" in types and "creation" not in types


def _sudoers_edit(threat, found):
    """Rule `sudoers_written`: a command that writes sudo's own rules (`>> /etc/sudoers`, `tee
    /etc/sudoers.d/…`, a NOPASSWD grant): someone granting themselves root (T1548.003)."""
    for line in signal_model.values(threat, "command_line"):
        if SUDOERS_WRITE.search(line[:8_192]):
            add(found, "privilege_escalation", "observables.command_line", "sudoers written by a command")
            return


def _shell_escape(threat, found):
    """Rule `privileged_shell_escape`: a command run with elevated rights that escapes to a shell (find
    -exec sh, vi :!sh, awk system(), python pty, less !sh, bash -p): root taken, not a task done."""
    for line in signal_model.values(threat, "command_line"):
        match = SHELL_ESCAPE.search(line)
        if match:
            add(found, "privilege_escalation", "observables.command_line", f"shell escape: {match.group(0)[:60]}")
            return


def _repeated_failures(model, found):
    """Rule `repeated_failures`: one alert counting REPEATED_FAILURES or more failed logins (a WAF's or
    SIEM's threshold rule) is password guessing, as Wazuh's own frequency rules are."""
    count = model["measures"].get("events")
    if any(b["name"] == "login_failure" for b in found) and isinstance(count, (int, float)) and count >= REPEATED_FAILURES:
        add(found, "brute_force", model["fields"].get("measures.events", "measures.events"), f"{count:,.0f} failed logins")


def _bulk_download(model, found):
    """Rule `bulk_download`: one alert counting BULK_DOWNLOADS or more file downloads from a cloud
    repository (SharePoint, OneDrive) by one user: the data is leaving (T1213.002 collection)."""
    count = model["measures"].get("events")
    if str(model.get("action") or "").lower() in DOWNLOAD_ACTIONS and isinstance(count, (int, float)) \
            and count >= BULK_DOWNLOADS:
        add(found, "exfiltration", model["fields"].get("measures.events", "measures.events"),
            f"{count:,.0f} files downloaded")


def _credentials_for_another(model, found):
    """Rule `credentials_for_another`: cloud credentials (an access key, a console password) created
    for a user other than the caller give the caller that user's rights (T1098.001)."""
    target, actor = (str(model["account"].get(k) or "").strip().lower() for k in ("target", "actor"))
    if str(model.get("action") or "").lower() in CLOUD_CREDENTIALS and target and actor and target != actor:
        add(found, "privilege_escalation", model["fields"].get("account.target", "account.target"),
            "cloud credentials created for another identity")


def _automated_login(threat, found):
    """Rule `automated_login`: automated traffic against an authentication endpoint is credential stuffing."""
    names = {b["name"] for b in found}
    endpoint = signal_model.text(threat, "endpoint") or next(iter(signal_model.values(threat, "urls")), "")
    if names & {"automation", "rate_abuse", "anonymising_proxy"} and LOGIN_PATHS.search(endpoint):
        add(found, "credential_stuffing", "observables.endpoint", "automated requests on a login endpoint")


def _refused_logins(threat, model, found):
    """Rule `refused_logins`: a frequency rule counting REPEATED_FAILURES or more HTTP requests refused
    401/403 on a login endpoint is credentials being tried (stuffing), not paths being scanned."""
    count, status = model["measures"].get("events"), model["measures"].get("http_status")
    endpoint = signal_model.text(threat, "endpoint") or next(iter(signal_model.values(threat, "urls")), "")
    if status in (401, 403) and isinstance(count, (int, float)) and count >= REPEATED_FAILURES \
            and LOGIN_PATHS.search(endpoint):
        add(found, "credential_stuffing", model["fields"].get("measures.events", "measures.events"),
            f"{count:,.0f} logins refused {status} on {endpoint[:80]}")


def _outbound_volume(threat, model, found):
    """Rule `outbound_volume`: a gigabyte leaving is exfiltration whatever else the alert says; a
    hundred megabytes is, from a host already showing compromise or flagged as anomalous."""
    sent = sent_out(model)
    names = {b["name"] for b in found}
    suspect = names & {"command_and_control", "malware", "exploit_success", "suspicious_execution", "anomaly"}
    if (isinstance(sent, (int, float)) and is_outbound(threat, model)
            and (sent >= EXFIL_ALONE_BYTES or (sent >= EXFIL_BYTES and suspect))):
        field = "measures.upload_bytes" if sent != model["measures"].get("src_bytes") else "measures.src_bytes"
        add(found, "exfiltration", model["fields"].get(field, field),
            f"{sent / 1e6:,.0f} MB sent out" + (" (the upload's declared size)" if field.endswith("upload_bytes") else ""))


def sent_out(model):
    """Bytes the source sends: counted on the flow, or declared by an upload still running (a PUT's
    Content-Length), whichever is larger."""
    amounts = [v for v in (model["measures"].get("src_bytes"), model["measures"].get("upload_bytes"))
               if isinstance(v, (int, float))]
    return max(amounts) if amounts else None


def _masquerading(threat, model, found):
    """Rule `deceptive_name`: an account, process or file name holding a character that hides itself
    (DECEPTIVE): 'Invoice<U+202E>fdp.exe' reads 'Invoiceexe.pdf', 'adm<U+200B>in' reads 'admin'."""
    names = [(f"observables.{name}", value) for name in ("user", "process") for value in signal_model.values(threat, name)]
    names += [(model["fields"].get(f"account.{key}", f"account.{key}"), model["account"][key])
              for key in ACCOUNT_NAMES if isinstance(model["account"].get(key), str)]
    names += [(model["fields"].get(key, key), str(model.get(key) or "")[:2000]) for key in ("process", "file")]
    for field, value in names:
        match = DECEPTIVE.search(value)
        if match:
            named = "an account" if field.endswith("user") or "account" in field else "a file"
            add(found, "masquerading", field, f"U+{ord(match.group(0)):04X} in {named} name")
            return
    _system_name_elsewhere(threat, model, found)


def _system_name_elsewhere(threat, model, found):
    """Rule `system_name_elsewhere`: a program file named like a kernel thread, or like a Windows core
    process outside its system folder ('/var/tmp/.x/kthreadd', 'C:\\Users\\Public\\svchost.exe')."""
    paths = [("observables.process", value) for value in signal_model.values(threat, "process")]
    paths += [("observables.command_line", program(line)) for line in signal_model.values(threat, "command_line")]
    paths.append((model["fields"].get("process", "process"), str(model.get("process") or "")[:2000]))
    for field, path in paths:
        folder, _sep, name = path.replace("/", "\\").rpartition("\\")
        if not folder:
            continue  # a bare name says nothing about where it runs
        expected = WINDOWS_CORE.get(name.lower())
        if KERNEL_THREADS.match(name) or (expected and not (folder.lower() + "\\").endswith(expected)
                                          and "\\syswow64" not in folder.lower()):
            add(found, "masquerading", field, f"system name {name} run from {folder[:120]}")
            return


def program(line):
    """The program a command line runs: its quoted first token, else its first word."""
    line = line.strip()
    if line.startswith('"'):
        return line[1:].partition('"')[0]
    return line.split(" ", 1)[0] if line else ""


def _remote_service(threat, found):
    """Rule `remote_service`: a new service (7045/4697) whose binary is PsExec's, on an admin share, or
    dropped straight into the Windows folder is run from another host: lateral movement."""
    if not any(b["name"] == "persistence" and NEW_SERVICE.search(str(b.get("detail"))) for b in found):
        return False
    for line in signal_model.values(threat, "command_line"):
        if REMOTE_SERVICE.search(line.strip()):
            add(found, "lateral_movement", "observables.command_line", "a service run from another host")
            return True
    return False


def _service_account_desktop(threat, model, found):
    """Rule `service_account_desktop`: a service account's successful remote desktop logon from inside.
    Service accounts run jobs and are not meant to log on interactively: a person is using its
    credentials to move between hosts (lateral movement)."""
    if not any(b["name"] == "login_success" for b in found) or (model.get("measures") or {}).get("logon_type") != RDP_LOGON:
        return
    if is_inbound(threat, model):
        return
    names = signal_model.values(threat, "user") + [model["account"][k] for k in ACCOUNT_NAMES
                                             if isinstance(model["account"].get(k), str)]
    for name in names:
        if SERVICE_ACCOUNT.search(name.split("\\")[-1].split("@")[0].strip()):
            add(found, "lateral_movement", "observables.user", f"service account {name[:80]} on remote desktop")
            return


def _wmi_execution(threat, model, found):
    """Rules `wmi_execution` and `remote_share_output`: a shell started by WMI's provider host
    (WmiPrvSE.exe) is code run through WMI (T1047); its output written to this host's own admin share
    is a remote caller reading it back over SMB (wmiexec): lateral movement."""
    parent = str(model.get("parent_process") or "").lower()
    programs = [program(line) for line in signal_model.values(threat, "command_line")] + signal_model.values(threat, "process")
    if parent.endswith("wmiprvse.exe") and any(SHELLS.search(p.strip()) for p in programs):
        add(found, "suspicious_execution", model["fields"].get("parent_process", "parent_process"),
            "a shell started by WMI (WmiPrvSE.exe)")
    for line in signal_model.values(threat, "command_line"):
        if SHARE_OUTPUT.search(line):
            add(found, "lateral_movement", "observables.command_line", "output written to the host's own admin "
                "share for a remote caller" + (" (WMI)" if parent.endswith("wmiprvse.exe") else ""))
            return


def _office_child(threat, model, found):
    """Rule `office_child`: a script host or system binary started by an Office application, or by
    Windows Script Host running a script from the user's own folders (Downloads, Desktop, AppData,
    Temp): a document or script the user opened running code (a phishing attachment: T1566.001,
    T1204.002)."""
    parent = str(model.get("parent_process") or "").replace("/", "\\").rsplit("\\", 1)[-1].lower()
    programs = [program(v).replace("/", "\\").rsplit("\\", 1)[-1].lower()
                for name in ("process", "command_line") for v in signal_model.values(threat, name)]
    opened = parent in OFFICE_APPS or parent in SCRIPT_HOSTS and USER_SCRIPT.search(str(model.get("parent_command") or ""))
    if opened and any(p in OFFICE_CHILDREN for p in programs):
        add(found, "phishing", model["fields"].get("parent_process", "parent_process"),
            f"{next(p for p in programs if p in OFFICE_CHILDREN)} started by {parent}")


def web_server_ran(model):
    """The command was run by a web server's own account, or by a web server's process: the
    application running what it was sent (a web shell), not an administrator."""
    actor = model["account"].get("writer") or model["account"].get("actor") or ""
    parent = str(model.get("parent_process") or "").strip().strip('"')
    return bool(WEB_ACCOUNTS.match(str(actor).strip()) or WEB_SERVERS.search(parent))


def _web_account_writes(model, found):
    """Rule `web_account_writes`: persistence written by a web server's own account is its code doing
    what it was sent: a web shell at work (T1505.003)."""
    writer = model["account"].get("writer") or model["account"].get("actor") or ""
    session = str(model["account"].get("session") or "").strip()
    if not WEB_ACCOUNTS.match(str(writer).strip()) or session and not WEB_ACCOUNTS.match(session):
        return  # a login session (a deploy job, an administrator) wrote as the web account: not its own code
    if any(b["name"] == "persistence" for b in found):
        add(found, "web_shell", "account.writer", f"persistence written by the web server's account {writer[:40]}")
    elif any(b["name"] == "integrity_change" for b in found) and SERVED_CODE.search(str(model.get("file") or "")):
        # The site's own code rewritten by the account that serves it (deploys write as another user):
        # a web shell, defacement or a payment-page skimmer being planted.
        add(found, "web_shell", "account.writer", f"served code rewritten by the web server's account {writer[:40]}")


def _hidden_autostart(model, found):
    """Rule `hidden_autostart`: an autostart file whose own name is hidden (a LaunchAgent, unit or cron
    file starting with a dot): persistence that hides itself (T1564.001)."""
    path = str(model.get("file") or "")
    if any(b["name"] == "persistence" for b in found) and HIDDEN_AUTOSTART.search(path):
        add(found, "hidden_artifact", model["fields"].get("file", "file"), f"a hidden autostart file: {path[:120]}")


def _kernel_module(threat, found):
    """Rule `kernel_module_loaded`: insmod/modprobe of a .ko file from outside the kernel's own module
    tree (/lib/modules, /usr/lib/modules): code loaded into the kernel from a user's folder (T1547.006)."""
    for line in signal_model.values(threat, "command_line"):
        match = KERNEL_LOAD.search(line[:4_096])
        if match and not re.match(r"/(usr/)?lib/modules/", match.group(2)):
            add(found, "persistence", "observables.command_line", f"kernel module loaded from {match.group(2)[:100]}")
            return


FETCH_VERB = re.compile(r"\b(curl|wget|certutil|bitsadmin|invoke-webrequest|iwr|invoke-restmethod|irm|start-bitstransfer|"
                        r"downloadstring|downloadfile|downloaddata)\b", re.I)
ADDRESS_URL = re.compile(r"\bhttps?://\d{1,3}(\.\d{1,3}){3}\b", re.I)


def _reverse_shell(threat, found):
    """Rule `reverse_shell`: a command that wires a shell's input and output to a network socket
    (`bash -i >& /dev/tcp/host/port 0>&1`, `nc -e /bin/sh`, a fifo through netcat, socat exec): someone
    outside types commands on this host (T1059.004 over a raw socket, T1095)."""
    for line in signal_model.values(threat, "command_line"):
        if REVERSE_SHELL.search(line[:8_192]):
            add(found, "command_and_control", "observables.command_line",
                "a shell wired to a network socket: a reverse shell (T1059.004) (T1095)")
            return


def _fetch_from_address(threat, found):
    """Rule `fetch_from_address`: a command that downloads from a bare IP address (curl, wget,
    certutil, bitsadmin, PowerShell's web cmdlets): a tool brought in from outside (T1105); piped
    into a shell, code from outside ran (the policy's `fetched_script_ran`)."""
    for line in signal_model.values(threat, "command_line"):
        text = line[:8_192]
        # The URL may come first, in a variable the download call then uses ($u='http://…'; …DownloadFile($u…)).
        fetched = BARE_FETCH.search(text) or (FETCH_VERB.search(text) and ADDRESS_URL.search(text))
        if fetched and not UPLOAD.search(text):
            ran = PIPED_TO_SHELL.search(text[fetched.end():]) or EXPRESSION_RUN.search(text)
            add(found, "suspicious_execution", "observables.command_line",
                "runs a script it downloads from a bare address in a shell (T1105)" if ran
                else "downloads from a bare address (T1105)")
            return


def _hidden_staging(threat, model, found):
    """Rule `hidden_staging`: a program run from, or working in, a hidden folder inside /tmp, /var/tmp,
    /dev/shm or a web tree (/dev/shm/.x, /var/tmp/.font-unix, /var/www/data/.pk): an intruder's
    staging place (T1564.001)."""
    places = [(f"observables.{name}", program(value)) for name in ("process", "command_line")
              for value in signal_model.values(threat, name)]
    places += [(model["fields"].get(key, key), str(model.get(key) or "")) for key in ("process", "workdir")]
    for field, path in places:
        if HIDDEN_STAGING.match(path.strip()):
            add(found, "hidden_artifact", field, f"runs in a hidden temporary folder: {path[:120]}")
            return
    for line in signal_model.values(threat, "command_line"):  # or writes there (curl -o /tmp/.x, > /dev/shm/.y)
        for token in re.split(r"[\s'\"=><]+", line[:4_096]):
            if HIDDEN_STAGING.match(token):
                add(found, "hidden_artifact", "observables.command_line", f"writes to a hidden temporary folder: "
                                                                          f"{token[:120]}")
                return


def is_outbound(threat, model=None):
    """Started inside, towards the outside (the source's own direction when it states one)."""
    return _direction(threat, model) == "outbound"


def is_inbound(threat, model=None):
    """Started outside (or by an unknown source), whatever the destination."""
    return _direction(threat, model) in ("inbound", "external", "")


def _direction(threat, model):
    stated = (model if model is not None else signal_model.model(threat)).get("direction")
    return stated or direction(signal_model.text(threat, "src_ip"), signal_model.text(threat, "dst_ip"))


def _hidden_powershell(threat, model, found):
    """Rule `hidden_powershell`: PowerShell, as this process or as the one that started it, run with a
    hidden window and the execution policy bypassed or an encoded command (T1059.001)."""
    lines = [("observables.command_line", line) for line in signal_model.values(threat, "command_line")]
    lines.append((model["fields"].get("parent_command", "parent_command"), str(model.get("parent_command") or "")))
    for field, line in lines:
        text = line[:8_192]
        if re.search(r"powershell|pwsh", text, re.I) and HIDDEN_WINDOW.search(text) and POLICY_LIFTED.search(text):
            add(found, "suspicious_execution", field, "PowerShell with a hidden window and the execution policy "
                                                      "lifted (T1059.001)")
            return


NSENTER_HOST = re.compile(r"\bnsenter\b.*?(\s-t\s*1\b|\s--target[=\s]+1\b)")


def _host_namespaces(threat, found):
    """Rule `host_namespaces_entered`: nsenter into PID 1's namespaces — from a container, the node
    itself (T1611 Escape to Host)."""
    for line in signal_model.values(threat, "command_line"):
        if NSENTER_HOST.search(line[:8_192]):
            add(found, "privilege_escalation", "observables.command_line",
                "enters the namespaces of PID 1: the node itself (T1611)")
            return


# Web servers whose child shell a web-shell rule watches, and how a command asks the shell for more
# than running one program: chaining, piping, redirection, an escape.
WEB_SERVERS = re.compile(r"(^|[\\/])(w3wp|httpd|apache2?|nginx|php-fpm[\d.]*|php-cgi|tomcat\d*|java)(\.exe)?$", re.I)
SHELL_RUNS_ONE = re.compile(r'^\s*(?:"?[^"\s]*\\)?cmd(?:\.exe)?"?\s+/c\s+"{1,2}(?P<program>[a-z]:\\[^"]+?\.exe)"\s', re.I)
CHAINING = re.compile(r"[&|<>^;`]")
SYSTEM_PROGRAMS = re.compile(r"^[a-z]:\\(windows|programdata|users)\\", re.I)


def web_app_tool(threat, model):
    """The program a web server's shell ran when the shell was only the way to start one program the
    application ships in its own folder (`cmd /c "D:\\Sites\\Portal\\bin\\wkhtmltopdf.exe" …`):
    nothing chained, piped or redirected, and not a system or user folder. Else ""."""
    parent = str(model.get("parent_process") or "")
    if not WEB_SERVERS.search(parent.strip().strip('"')):
        return ""
    for line in signal_model.values(threat, "command_line"):
        found = SHELL_RUNS_ONE.match(line[:4_096])
        if not found or SYSTEM_PROGRAMS.match(found.group("program")):
            continue
        rest = line[found.end():4_096]
        if not CHAINING.search(re.sub(r'"[^"]*"', "", rest)):
            return found.group("program")
    return ""
