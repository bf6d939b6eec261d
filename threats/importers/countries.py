"""Country names -> ISO 3166-1 alpha-2 codes, for sources that name the country but give no code
(Wazuh's GeoLocation.country_name). The names are the tz database's iso3166.tab (public domain,
IANA), with the English short names GeoIP databases use where the tz table writes them differently."""

# fmt: off
COUNTRY_CODES = {
    'afghanistan': 'AF', 'albania': 'AL', 'algeria': 'DZ', 'andorra': 'AD', 'angola': 'AO', 'anguilla': 'AI',
    'antarctica': 'AQ', 'antigua & barbuda': 'AG', 'antigua and barbuda': 'AG', 'argentina': 'AR', 'armenia': 'AM',
    'aruba': 'AW', 'australia': 'AU', 'austria': 'AT', 'azerbaijan': 'AZ', 'bahamas': 'BS', 'bahrain': 'BH',
    'bangladesh': 'BD', 'barbados': 'BB', 'belarus': 'BY', 'belgium': 'BE', 'belize': 'BZ', 'benin': 'BJ',
    'bermuda': 'BM', 'bhutan': 'BT', 'bolivia': 'BO', 'bosnia & herzegovina': 'BA', 'bosnia and herzegovina': 'BA',
    'botswana': 'BW', 'bouvet island': 'BV', 'brazil': 'BR', 'britain (uk)': 'GB',
    'british indian ocean territory': 'IO', 'brunei': 'BN', 'bulgaria': 'BG', 'burkina faso': 'BF', 'burma': 'MM',
    'burundi': 'BI', 'cabo verde': 'CV', 'cambodia': 'KH', 'cameroon': 'CM', 'canada': 'CA', 'cape verde': 'CV',
    'caribbean nl': 'BQ', 'cayman islands': 'KY', 'central african rep.': 'CF', 'chad': 'TD', 'chile': 'CL',
    'china': 'CN', 'christmas island': 'CX', 'cocos (keeling) islands': 'CC', 'colombia': 'CO', 'comoros': 'KM',
    'congo (dem. rep.)': 'CD', 'congo (rep.)': 'CG', 'congo republic': 'CG', 'cook islands': 'CK',
    'costa rica': 'CR', "cote d'ivoire": 'CI', 'croatia': 'HR', 'cuba': 'CU', 'curaçao': 'CW', 'cyprus': 'CY',
    'czech republic': 'CZ', 'czechia': 'CZ', "côte d'ivoire": 'CI', 'democratic republic of the congo': 'CD',
    'denmark': 'DK', 'djibouti': 'DJ', 'dominica': 'DM', 'dominican republic': 'DO', 'dr congo': 'CD',
    'east timor': 'TL', 'ecuador': 'EC', 'egypt': 'EG', 'el salvador': 'SV', 'equatorial guinea': 'GQ',
    'eritrea': 'ER', 'estonia': 'EE', 'eswatini': 'SZ', 'eswatini (swaziland)': 'SZ', 'ethiopia': 'ET',
    'falkland islands': 'FK', 'faroe islands': 'FO', 'fiji': 'FJ', 'finland': 'FI', 'france': 'FR',
    'french guiana': 'GF', 'french polynesia': 'PF', 'french s. terr.': 'TF', 'gabon': 'GA', 'gambia': 'GM',
    'georgia': 'GE', 'germany': 'DE', 'ghana': 'GH', 'gibraltar': 'GI', 'great britain': 'GB', 'greece': 'GR',
    'greenland': 'GL', 'grenada': 'GD', 'guadeloupe': 'GP', 'guam': 'GU', 'guatemala': 'GT', 'guernsey': 'GG',
    'guinea': 'GN', 'guinea-bissau': 'GW', 'guyana': 'GY', 'haiti': 'HT', 'heard island & mcdonald islands': 'HM',
    'honduras': 'HN', 'hong kong': 'HK', 'hungary': 'HU', 'iceland': 'IS', 'india': 'IN', 'indonesia': 'ID',
    'iran': 'IR', 'iran, islamic republic of': 'IR', 'iraq': 'IQ', 'ireland': 'IE', 'isle of man': 'IM',
    'israel': 'IL', 'italy': 'IT', 'ivory coast': 'CI', 'jamaica': 'JM', 'japan': 'JP', 'jersey': 'JE',
    'jordan': 'JO', 'kazakhstan': 'KZ', 'kenya': 'KE', 'kiribati': 'KI', 'korea (north)': 'KP',
    'korea (south)': 'KR', 'kuwait': 'KW', 'kyrgyzstan': 'KG', 'laos': 'LA', 'latvia': 'LV', 'lebanon': 'LB',
    'lesotho': 'LS', 'liberia': 'LR', 'libya': 'LY', 'liechtenstein': 'LI', 'lithuania': 'LT', 'luxembourg': 'LU',
    'macao': 'MO', 'macau': 'MO', 'madagascar': 'MG', 'malawi': 'MW', 'malaysia': 'MY', 'maldives': 'MV',
    'mali': 'ML', 'malta': 'MT', 'marshall islands': 'MH', 'martinique': 'MQ', 'mauritania': 'MR', 'mauritius': 'MU',
    'mayotte': 'YT', 'mexico': 'MX', 'micronesia': 'FM', 'moldova': 'MD', 'monaco': 'MC', 'mongolia': 'MN',
    'montenegro': 'ME', 'montserrat': 'MS', 'morocco': 'MA', 'mozambique': 'MZ', 'myanmar': 'MM',
    'myanmar (burma)': 'MM', 'namibia': 'NA', 'nauru': 'NR', 'nepal': 'NP', 'netherlands': 'NL',
    'new caledonia': 'NC', 'new zealand': 'NZ', 'nicaragua': 'NI', 'niger': 'NE', 'nigeria': 'NG', 'niue': 'NU',
    'norfolk island': 'NF', 'north korea': 'KP', 'north macedonia': 'MK', 'northern mariana islands': 'MP',
    'norway': 'NO', 'oman': 'OM', 'pakistan': 'PK', 'palau': 'PW', 'palestine': 'PS', 'panama': 'PA',
    'papua new guinea': 'PG', 'paraguay': 'PY', 'peru': 'PE', 'philippines': 'PH', 'pitcairn': 'PN', 'poland': 'PL',
    'portugal': 'PT', 'puerto rico': 'PR', 'qatar': 'QA', 'republic of korea': 'KR', 'republic of the congo': 'CG',
    'romania': 'RO', 'russia': 'RU', 'russian federation': 'RU', 'rwanda': 'RW', 'réunion': 'RE',
    'saint kitts and nevis': 'KN', 'samoa (american)': 'AS', 'samoa (western)': 'WS', 'san marino': 'SM',
    'sao tome & principe': 'ST', 'sao tome and principe': 'ST', 'saudi arabia': 'SA', 'senegal': 'SN',
    'serbia': 'RS', 'seychelles': 'SC', 'sierra leone': 'SL', 'singapore': 'SG', 'slovakia': 'SK', 'slovenia': 'SI',
    'solomon islands': 'SB', 'somalia': 'SO', 'south africa': 'ZA',
    'south georgia & the south sandwich islands': 'GS', 'south korea': 'KR', 'south sudan': 'SS', 'spain': 'ES',
    'sri lanka': 'LK', 'st barthelemy': 'BL', 'st helena': 'SH', 'st kitts & nevis': 'KN', 'st lucia': 'LC',
    'st maarten (dutch)': 'SX', 'st martin (french)': 'MF', 'st pierre & miquelon': 'PM', 'st vincent': 'VC',
    'sudan': 'SD', 'suriname': 'SR', 'svalbard & jan mayen': 'SJ', 'swaziland': 'SZ', 'sweden': 'SE',
    'switzerland': 'CH', 'syria': 'SY', 'são tomé and príncipe': 'ST', 'taiwan': 'TW', 'tajikistan': 'TJ',
    'tanzania': 'TZ', 'thailand': 'TH', 'the netherlands': 'NL', 'togo': 'TG', 'tokelau': 'TK', 'tonga': 'TO',
    'trinidad & tobago': 'TT', 'trinidad and tobago': 'TT', 'tunisia': 'TN', 'turkey': 'TR', 'turkiye': 'TR',
    'turkmenistan': 'TM', 'turks & caicos is': 'TC', 'tuvalu': 'TV', 'türkiye': 'TR', 'u.s.': 'US', 'uganda': 'UG',
    'uk': 'GB', 'ukraine': 'UA', 'united arab emirates': 'AE', 'united kingdom': 'GB', 'united states': 'US',
    'united states of america': 'US', 'uruguay': 'UY', 'us minor outlying islands': 'UM', 'usa': 'US',
    'uzbekistan': 'UZ', 'vanuatu': 'VU', 'vatican city': 'VA', 'venezuela': 'VE', 'viet nam': 'VN', 'vietnam': 'VN',
    'virgin islands (uk)': 'VG', 'virgin islands (us)': 'VI', 'wallis & futuna': 'WF', 'western sahara': 'EH',
    'yemen': 'YE', 'zambia': 'ZM', 'zimbabwe': 'ZW', 'åland islands': 'AX',
}
# fmt: on


def country_code(name):
    """The ISO code of a country name (or of a code given as one), else ""."""
    text = name.strip() if isinstance(name, str) else ""
    if len(text) == 2 and text.isalpha():
        return text.upper()
    return COUNTRY_CODES.get(text.lower(), "")
