// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title AnchorRegistry
/// @notice Append-only record of transparency-log roots (RFC 6962 tree heads).
/// @dev One storage slot per anchor: tree size, block timestamp, block number and the
///      anchor's position are packed into a single word, so an anchor costs one fresh
///      SSTORE plus one update of the packed counters slot. Nothing is
///      ever overwritten or deleted: a root can be anchored once, and every anchor must
///      cover strictly more leaves than the one before it.
contract AnchorRegistry {
    struct Anchor {
        uint64 treeSize;
        uint64 timestamp;
        uint64 index;
        uint64 blockNumber;
    }

    /// @notice Emitted once per anchored root; `index` is the anchor's position (0-based).
    event Anchored(bytes32 indexed root, uint256 treeSize, uint256 index, uint256 timestamp);
    event AnchorerAdded(address indexed account);
    event AnchorerRemoved(address indexed account);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);

    error NotOwner();
    error NotAnchorer();
    error ZeroAddress();
    error AlreadyAnchored(bytes32 root);
    error TreeSizeNotIncreasing(uint256 treeSize, uint256 latestTreeSize);

    /// @dev Packed into one slot, apart from `owner`, so an anchor reads and writes one word.
    uint64 private _latestTreeSize;
    uint64 private _anchorCount;
    address public owner;

    mapping(address => bool) public isAnchorer;
    mapping(bytes32 => Anchor) private _anchors;

    constructor() {
        owner = msg.sender;
        isAnchorer[msg.sender] = true;
        emit OwnershipTransferred(address(0), msg.sender);
        emit AnchorerAdded(msg.sender);
    }

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner();
        _;
    }

    /// @notice Records `root` as the head of the log at `treeSize` leaves.
    function anchor(bytes32 root, uint64 treeSize) external returns (uint256 index) {
        if (!isAnchorer[msg.sender]) revert NotAnchorer();
        if (_anchors[root].treeSize != 0) revert AlreadyAnchored(root);
        uint64 latest = _latestTreeSize;
        if (treeSize <= latest) revert TreeSizeNotIncreasing(treeSize, latest);

        uint64 count = _anchorCount;
        _anchors[root] = Anchor(treeSize, uint64(block.timestamp), count, uint64(block.number));
        _latestTreeSize = treeSize;
        _anchorCount = count + 1;
        emit Anchored(root, treeSize, count, block.timestamp);
        return count;
    }

    /// @notice The anchor of `root`; `exists` is false (and the rest zero) if it was never anchored.
    function anchorOf(bytes32 root)
        external
        view
        returns (uint256 treeSize, uint256 timestamp, uint256 index, uint256 blockNumber, bool exists)
    {
        Anchor memory a = _anchors[root];
        return (a.treeSize, a.timestamp, a.index, a.blockNumber, a.treeSize != 0);
    }

    function latestTreeSize() external view returns (uint256) {
        return _latestTreeSize;
    }

    function anchorCount() external view returns (uint256) {
        return _anchorCount;
    }

    function addAnchorer(address account) external onlyOwner {
        if (account == address(0)) revert ZeroAddress();
        if (!isAnchorer[account]) {
            isAnchorer[account] = true;
            emit AnchorerAdded(account);
        }
    }

    function removeAnchorer(address account) external onlyOwner {
        if (isAnchorer[account]) {
            isAnchorer[account] = false;
            emit AnchorerRemoved(account);
        }
    }

    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        emit OwnershipTransferred(owner, newOwner);
        owner = newOwner;
    }
}
