"""FreeSWITCH-shaped configuration trees for the install and audit tests.

Written for the tests, shaped like FreeSWITCH 1.10's conf/vanilla where it matters:
freeswitch.xml reaches everything through X-PRE-PROCESS includes (globs, relative to
the including file), public.xml has its own extensions before its ``public/*.xml``
include, default.xml includes ``default/*.xml`` at its end, sofia.conf.xml includes
``../sip_profiles/*.xml``, the sample users take ``$${default_password}`` from vars.xml,
and mod_python3 is commented out in modules.conf.xml. ``stock()`` is that shape with
its holes; ``hardened()`` closes every hole ``fs-guard audit`` knows, except fs-guard
itself (the screen, mod_python3 and the events hook), which ``install`` adds.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Tuple

FREESWITCH_XML = """\
<?xml version="1.0"?>
<document type="freeswitch/xml">
  <!--#comment
      Comments starting with #command are preprocessed and never reach the XML parser.
  -->
  <X-PRE-PROCESS cmd="include" data="vars.xml"/>

  <section name="configuration" description="Various Configuration">
    <X-PRE-PROCESS cmd="include" data="autoload_configs/*.xml"/>
  </section>

  <section name="dialplan" description="Regex/XML Dialplan">
    <X-PRE-PROCESS cmd="include" data="dialplan/*.xml"/>
  </section>

  <section name="directory" description="User Directory">
    <X-PRE-PROCESS cmd="include" data="directory/*.xml"/>
  </section>
</document>
"""

VARS_XML = """\
<include>
  <!-- Preprocessor Variables
       NOTICE: YOU CAN NOT COMMENT OUT AN X-PRE-PROCESS line, Remove the line instead.
       YOU SHOULD CHANGE THIS default_password value.
  -->
  <X-PRE-PROCESS cmd="set" data="default_password=1234"/>
  <!-- Did you change it yet? -->
  <X-PRE-PROCESS cmd="set" data="domain=$${local_ip_v4}"/>
  <X-PRE-PROCESS cmd="set" data="domain_name=$${domain}"/>
  <X-PRE-PROCESS cmd="set" data="hold_music=local_stream://moh"/>
  <X-PRE-PROCESS cmd="set" data="use_profile=external"/>
  <X-PRE-PROCESS cmd="set" data="unroll_loops=true"/>
  <X-PRE-PROCESS cmd="set" data="default_gateway=example.com"/>
  <X-PRE-PROCESS cmd="set" data="internal_auth_calls=true"/>
  <X-PRE-PROCESS cmd="set" data="internal_sip_port=5060"/>
  <X-PRE-PROCESS cmd="set" data="external_sip_port=5080"/>
  <X-PRE-PROCESS cmd="stun-set" data="external_sip_ip=stun:stun.freeswitch.org"/>
  <X-PRE-PROCESS cmd="set" data="call_debug=false"/>
  <X-PRE-PROCESS cmd="set" data="console_loglevel=info"/>
  <X-PRE-PROCESS cmd="set" data="default_areacode=918"/>
  <X-PRE-PROCESS cmd="set" data="default_country=US"/>
</include>
"""

MODULES_CONF = """\
<configuration name="modules.conf" description="Modules">
  <modules>

    <!-- Loggers (I'd load these first) -->
    <load module="mod_console"/>
    <load module="mod_logfile"/>

    <!-- Endpoints -->
    <load module="mod_sofia"/>
    <load module="mod_loopback"/>

    <!-- Applications -->
    <load module="mod_commands"/>
    <load module="mod_dptools"/>

    <!-- Dialplan Interfaces -->
    <load module="mod_dialplan_xml"/>

    <!-- Languages -->
    <!-- <load module="mod_v8"/> -->
    <!-- <load module="mod_perl"/> -->
    <!-- <load module="mod_python3"/> -->
    <load module="mod_lua"/>
  </modules>
</configuration>
"""

PYTHON_CONF = """\
<configuration name="python.conf" description="PYTHON Configuration">
  <settings>
    <!-- <param name="xml-handler-script" value="dp"/> -->
    <param name="xml-handler-bindings" value="dialplan"/>
    <param name="startup-script" value="billing.sync"/>
  </settings>
</configuration>
"""

ACL_CONF = """\
<configuration name="acl.conf" description="Network Lists">
  <network-lists>
    <list name="lan" default="allow">
      <node type="deny" cidr="192.168.42.0/24"/>
      <node type="allow" cidr="192.168.42.42/32"/>
    </list>
    <list name="domains" default="deny">
      <node type="allow" domain="$${domain}"/>
    </list>
  </network-lists>
</configuration>
"""

SOFIA_CONF = """\
<configuration name="sofia.conf" description="sofia Endpoint">
  <global_settings>
    <param name="log-level" value="0"/>
    <param name="debug-presence" value="0"/>
  </global_settings>
  <!--
      The rabbit hole goes deep.  This includes all the
      profiles in the sip_profiles directory that is up
      one level from this directory.
  -->
  <profiles>
    <X-PRE-PROCESS cmd="include" data="../sip_profiles/*.xml"/>
  </profiles>
</configuration>
"""

SWITCH_CONF = """\
<configuration name="switch.conf" description="Core Configuration">
  <settings>
    <param name="max-sessions" value="1000"/>
    <param name="sessions-per-second" value="30"/>
    <param name="loglevel" value="debug"/>
  </settings>
</configuration>
"""

INTERNAL_PROFILE = """\
<profile name="internal">
  <aliases>
  </aliases>
  <gateways>
  </gateways>
  <domains>
    <domain name="all" alias="true" parse="false"/>
  </domains>
  <settings>
    <param name="debug" value="0"/>
    <param name="sip-trace" value="no"/>
    <param name="log-auth-failures" value="false"/>
    <param name="context" value="public"/>
    <param name="sip-port" value="$${internal_sip_port}"/>
    <param name="dialplan" value="XML"/>
    <param name="sip-ip" value="$${local_ip_v4}"/>
    <param name="apply-inbound-acl" value="domains"/>
    <param name="local-network-acl" value="localnet.auto"/>
    <!-- <param name="accept-blind-auth" value="true"/> -->
    <param name="auth-calls" value="$${internal_auth_calls}"/>
    <param name="auth-subscriptions" value="true"/>
    <param name="force-register-domain" value="$${domain}"/>
  </settings>
</profile>
"""

EXTERNAL_PROFILE = """\
<profile name="external">
  <!-- This profile is only for outbound registrations to providers -->
  <gateways>
    <X-PRE-PROCESS cmd="include" data="external/*.xml"/>
  </gateways>
  <domains>
    <domain name="all" alias="false" parse="true"/>
  </domains>
  <settings>
    <param name="debug" value="0"/>
    <param name="sip-port" value="$${external_sip_port}"/>
    <param name="dialplan" value="XML"/>
    <param name="context" value="public"/>
    <param name="auth-calls" value="false"/>
    <param name="sip-ip" value="$${local_ip_v4}"/>
  </settings>
</profile>
"""

GATEWAY = """\
<include>
  <gateway name="example.com">
    <param name="username" value="joeuser"/>
    <param name="password" value="s3cr3t-trunk-pw"/>
  </gateway>
</include>
"""

PUBLIC_XML = """\
<!--
    NOTICE:

    This context is usually accessed via the external sip profile listening on port 5080.
-->
<include>
  <context name="public">

    <extension name="unloop">
      <condition field="${unroll_loops}" expression="^true$"/>
      <condition field="${sip_looped_call}" expression="^true$">
\t<action application="deflect" data="${destination_number}"/>
      </condition>
    </extension>
    <!--
\tTag anything pass thru here as an outside_call.
    -->
    <extension name="outside_call" continue="true">
      <condition>
\t<action application="set" data="outside_call=true"/>
      </condition>
    </extension>

    <extension name="call_debug" continue="true">
      <condition field="${call_debug}" expression="^true$" break="never">
\t<action application="info"/>
      </condition>
    </extension>

    <extension name="public_extensions">
      <condition field="destination_number" expression="^(10[01][0-9])$">
\t<action application="transfer" data="$1 XML default"/>
      </condition>
    </extension>

    <!--
\tYou can place files in the public directory to get included.
    -->
    <X-PRE-PROCESS cmd="include" data="public/*.xml"/>
  </context>
</include>
"""

INBOUND_DID = """\
<include>
  <extension name="public_did">
    <condition field="destination_number" expression="^(5551212)$">
      <action application="set" data="domain_name=$${domain}"/>
      <action application="transfer" data="1000 XML default"/>
    </condition>
  </extension>
</include>
"""

DEFAULT_XML = """\
<?xml version="1.0" encoding="utf-8"?>
<!--
    NOTICE:
    This context is usually accessed via authenticated callers on the sip profile on port 5060.
-->
<include>
  <context name="default">

    <extension name="unloop">
      <condition field="${unroll_loops}" expression="^true$"/>
      <condition field="${sip_looped_call}" expression="^true$">
\t<action application="deflect" data="${destination_number}"/>
      </condition>
    </extension>

    <extension name="global" continue="true">
      <condition field="${call_debug}" expression="^true$" break="never">
\t<action application="info"/>
      </condition>
      <condition>
\t<action application="hash" data="insert/${domain_name}-last_dial/${caller_id_number}/${destination_number}"/>
      </condition>
    </extension>

    <extension name="Local_Extension">
      <condition field="destination_number" expression="^(10[01][0-9])$">
\t<action application="export" data="dialed_extension=$1"/>
\t<action application="set" data="hangup_after_bridge=true"/>
\t<action application="bridge" data="user/${dialed_extension}@${domain_name}"/>
      </condition>
    </extension>

    <extension name="sip_uri">
      <condition field="destination_number" expression="^sip:(.*)$">
\t<action application="bridge" data="sofia/${use_profile}/$1"/>
      </condition>
    </extension>

    <!--
\tYou can place files in the default directory to get included.
    -->
    <X-PRE-PROCESS cmd="include" data="default/*.xml"/>

    <extension name="enum">
      <condition field="${module_exists(mod_enum)}" expression="true"/>
      <condition field="destination_number" expression="^(.*)$">
\t<action application="transfer" data="$1 enum"/>
      </condition>
    </extension>

  </context>
</include>
"""

EXAMPLE_COM = """\
<include>
  <extension name="domestic.example.com">
    <condition field="${toll_allow}" expression="domestic"/>
    <condition field="destination_number" expression="^(\\d{11})$">
      <action application="bridge" data="sofia/gateway/${default_gateway}/$1"/>
    </condition>
  </extension>

  <extension name="international.example.com">
    <condition field="${toll_allow}" expression="international"/>
    <condition field="destination_number" expression="^(011\\d+|00\\d+|\\+\\d+)$">
      <action application="bridge" data="sofia/gateway/${default_gateway}/$1"/>
    </condition>
  </extension>
</include>
"""

FEATURES_XML = """\
<include>
  <context name="features">
    <extension name="dx">
      <condition field="destination_number" expression="^dx$">
        <action application="answer"/>
        <action application="read" data="11 11 'tone_stream://%(10000,0,350,440)' digits 5000 #"/>
        <action application="execute_extension" data="is_transfer XML features"/>
      </condition>
    </extension>
  </context>
</include>
"""

DIRECTORY_DEFAULT = """\
<include>
  <domain name="$${domain}">
    <params>
      <param name="dial-string" value="{^^:sip_invite_domain=${dialed_domain}}${sofia_contact(*/${dialed_user}@${dialed_domain})}"/>
    </params>
    <variables>
      <variable name="record_stereo" value="true"/>
    </variables>
    <groups>
      <group name="default">
        <users>
          <X-PRE-PROCESS cmd="include" data="default/*.xml"/>
        </users>
      </group>
    </groups>
  </domain>
</include>
"""

USER = """\
<include>
  <user id="{id}">
    <params>
      <param name="password" value="{password}"/>
      <param name="vm-password" value="{id}"/>
    </params>
    <variables>
      <variable name="toll_allow" value="domestic,international,local"/>
      <variable name="user_context" value="default"/>
    </variables>
  </user>
</include>
"""

STOCK: Dict[str, str] = {
    "freeswitch.xml": FREESWITCH_XML,
    "vars.xml": VARS_XML,
    "autoload_configs/modules.conf.xml": MODULES_CONF,
    "autoload_configs/python.conf.xml": PYTHON_CONF,
    "autoload_configs/acl.conf.xml": ACL_CONF,
    "autoload_configs/sofia.conf.xml": SOFIA_CONF,
    "autoload_configs/switch.conf.xml": SWITCH_CONF,
    "sip_profiles/internal.xml": INTERNAL_PROFILE,
    "sip_profiles/external.xml": EXTERNAL_PROFILE,
    "sip_profiles/external/example.xml": GATEWAY,
    "dialplan/public.xml": PUBLIC_XML,
    "dialplan/public/00_inbound_did.xml": INBOUND_DID,
    "dialplan/default.xml": DEFAULT_XML,
    "dialplan/default/01_example.com.xml": EXAMPLE_COM,
    "dialplan/features.xml": FEATURES_XML,
    "directory/default.xml": DIRECTORY_DEFAULT,
    "directory/default/1000.xml": USER.format(id="1000", password="$${default_password}"),
    "directory/default/1001.xml": USER.format(id="1001", password="$${default_password}"),
}

Snapshot = Dict[str, Tuple[bytes, int, int]]


class FsTree:
    """A configuration directory being written for a test."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, relative: str) -> Path:
        return self.root.joinpath(*relative.split("/"))

    def write(self, relative: str, text: str) -> Path:
        path = self.path(relative)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
        return path

    def read(self, relative: str) -> str:
        return self.path(relative).read_bytes().decode("utf-8")

    def replace(self, relative: str, old: str, new: str) -> None:
        text = self.read(relative)
        assert text.count(old) == 1, f"{relative}: {old!r} found {text.count(old)} times"
        self.write(relative, text.replace(old, new))

    def line_of(self, relative: str, needle: str) -> int:
        for number, line in enumerate(self.read(relative).splitlines(), 1):
            if needle in line:
                return number
        raise AssertionError(f"{relative}: no line with {needle!r}")


def stock(root: Path) -> FsTree:
    tree = FsTree(root)
    for relative, text in STOCK.items():
        tree.write(relative, text)
    return tree


STRONG = "Xq7-vR2#pL9m"


def harden(tree: FsTree) -> FsTree:
    """Close every toll-fraud hole of the stock tree except fs-guard's own checks."""
    tree.replace("vars.xml", "default_password=1234", f"default_password={STRONG}")
    for user in ("1000", "1001"):
        tree.replace(f"directory/default/{user}.xml", "$${default_password}", f"{STRONG}-{user}")
    tree.replace(
        "sip_profiles/internal.xml",
        '<param name="log-auth-failures" value="false"/>',
        '<param name="log-auth-failures" value="true"/>',
    )
    tree.replace(
        "sip_profiles/external.xml",
        '    <param name="auth-calls" value="false"/>\n',
        '    <param name="auth-calls" value="false"/>\n'
        '    <param name="apply-inbound-acl" value="trusted_sip_peers"/>\n'
        '    <param name="log-auth-failures" value="true"/>\n',
    )
    tree.replace(
        "autoload_configs/acl.conf.xml",
        "  </network-lists>",
        '    <list name="trusted_sip_peers" default="deny">\n'
        '      <node type="allow" cidr="192.0.2.10/32"/>\n'
        "    </list>\n"
        "  </network-lists>",
    )
    example = "dialplan/default/01_example.com.xml"
    tree.replace(example, "^(\\d{11})$", "^(1[2-9]\\d{9})$")
    tree.replace(example, "^(011\\d+|00\\d+|\\+\\d+)$", "^(44[1-9]\\d{9})$")
    return tree


def hardened(root: Path) -> FsTree:
    return harden(stock(root))


def snapshot(*roots: Path) -> Snapshot:
    """Every file and directory under ``roots``: content, mode and modification time."""
    found: Snapshot = {}
    for root in roots:
        for base, dirs, files in os.walk(root):
            for name in dirs + files:
                path = Path(base, name)
                info = path.stat()
                data = path.read_bytes() if path.is_file() else b"<dir>"
                found[str(path)] = (data, info.st_mode, info.st_mtime_ns if path.is_file() else 0)
    return found


def files(snap: Snapshot) -> Dict[str, bytes]:
    return {path: data for path, (data, _, _) in snap.items()}
