"""Extracts the Lua sources of HistoryScripts.swift (Swift multi-line strings, indentation stripped)."""
import re, sys
src = open('/work/wt-research18/Sources/SSEHistory/HistoryScripts.swift').read()
def block(after):
    i = src.index(after)
    j = src.index('"""', i) + 3
    k = src.index('"""', j)
    body = src[j:k]
    lines = body.split('\n')[1:]
    indent = len(lines[-1])  # closing delimiter line
    return '\n'.join(l[indent:] for l in lines[:-1])
epoch = block('private static let epochFunctions')
publish = epoch + '\n' + block('static let publish = RedisScript(\n        epochFunctions +')
state = block('static let state = RedisScript(')
replay = block('static let replayPage = RedisScript(')
if __name__ == '__main__':
    which = sys.argv[1]
    sys.stdout.write({'publish': publish, 'state': state, 'replay': replay}[which])
